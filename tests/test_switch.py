"""The switch posterior against a brute-force enumeration of switch sequences."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from alrao_cli import Switch
from alrao_cli.alrao import switch as switch_module
from alrao_cli.alrao.switch import state_device

# Both recursions as written, before the fixture below replaces one by the other.
HOST_UPDATE, DEVICE_UPDATE = Switch._update_on_host, Switch._update_on_device

def brute_force_posterior(likelihoods: list[list[float]], theta: float) -> list[float]:
    """P(model used at T+1 | observations 1..T), by enumerating every switch sequence.

    A sequence is a set of switch times s (a switch after observation s, 1 <= s <= T),
    a model per segment, and whether the last segment is final. Under the prior, a
    segment is final with probability 1 - theta; a non-final segment started at
    observation u ends after observation s >= u with probability
    (1/(s+1)) * prod_{v=u}^{s-1} (1 - 1/(v+1)); models are uniform over K.
    """
    T, K = len(likelihoods), len(likelihoods[0])
    joint = [0.0] * K

    def survive(start: int, end: int) -> float:  # no switch after observations start..end
        return math.prod(1 - 1 / (v + 1) for v in range(start, end + 1))

    for n_switches in range(T + 1):
        for switch_times in itertools.combinations(range(1, T + 1), n_switches):
            starts = [1] + [s + 1 for s in switch_times]
            for models in itertools.product(range(K), repeat=len(starts)):
                prior = (1 / K) ** len(starts)
                for start, end in zip(starts, switch_times):
                    prior *= theta * survive(start, end - 1) / (end + 1)
                likelihood = 1.0
                for seg, start in enumerate(starts):
                    stop = starts[seg + 1] - 1 if seg + 1 < len(starts) else T
                    for t in range(start, stop + 1):
                        likelihood *= likelihoods[t - 1][models[seg]]
                # The last segment is final, or not and has not switched again by T.
                tail = (1 - theta) + theta * survive(starts[-1], T)
                joint[models[-1]] += prior * likelihood * tail
    total = sum(joint)
    return [j / total for j in joint]


@pytest.fixture(params=["host", "device"])
def recursion(request, monkeypatch):
    """Run every test on both implementations: numpy (CPU) and tensor ops (GPUs)."""
    if request.param == "device":
        monkeypatch.setattr(Switch, "_update_on_host", Switch._update_on_device)
    return request.param


pytestmark = pytest.mark.usefixtures("recursion")


@pytest.mark.parametrize("theta", [0.0, 0.3, 0.9, 0.999, 1.0])
def test_switch_matches_enumeration(theta):
    generator = torch.Generator().manual_seed(1)
    likelihoods = torch.rand(4, 3, generator=generator, dtype=torch.float64) + 0.05
    switch = Switch(3, theta=theta)
    for t in range(4):
        switch.update(likelihoods[t].log())
        expected = brute_force_posterior(likelihoods[: t + 1].tolist(), theta)
        assert torch.allclose(switch.posterior, torch.tensor(expected, dtype=torch.float64), atol=1e-12)
        assert torch.allclose(switch.log_posterior.exp().double(), switch.posterior, atol=1e-6)


def test_posterior_starts_uniform_and_sums_to_one():
    switch = Switch(4)
    assert torch.allclose(switch.posterior, torch.full((4,), 0.25, dtype=torch.float64))
    for _ in range(50):
        switch.update(-torch.rand(4) * 5)
        assert switch.posterior.sum().item() == pytest.approx(1.0, abs=1e-12)


def test_favours_a_consistently_better_model_then_recovers_when_it_changes():
    switch = Switch(3, theta=0.999)
    better_first = torch.tensor([-0.5, -1.0, -2.0])
    for _ in range(200):
        switch.update(better_first)
    assert switch.posterior.argmax().item() == 0
    assert switch.posterior[0] > 0.95
    better_later = torch.tensor([-2.0, -1.0, -0.5])
    for _ in range(200):
        switch.update(better_later)
    assert switch.posterior.argmax().item() == 2
    assert switch.posterior[2] > 0.95


def test_switch_recovers_faster_than_bayesian_averaging():
    # theta = 0 forbids switches: plain Bayesian model averaging, which must "catch up".
    switching, bayes = Switch(2, theta=0.999), Switch(2, theta=0.0)
    for log_p in [torch.tensor([-0.5, -1.0])] * 300 + [torch.tensor([-1.0, -0.5])] * 30:
        switching.update(log_p)
        bayes.update(log_p)
    assert switching.posterior[1] > 0.5 > bayes.posterior[1]


def test_stays_finite_over_a_million_updates():
    """Runs 70,000 updates, not a million: 50,000 from the start (diverged copies mixed
    in), then 20,000 with the observation count set to 1,000,000.

    That stands for a million because the recursion reads the count t only through the
    switch probability 1/(t+1) (as log1p(t), and log(t) for 1 - 1/(t+1)), and its state
    is renormalised at every step, so nothing else grows with t: what could go wrong at
    step 10^6 is a switch probability of 10^-6 meeting well-worn weights, and this is it.
    A real million updates would take a minute instead of a second.
    """
    switch = Switch(10)
    generator = torch.Generator().manual_seed(0)
    extreme = torch.tensor([0.0, -1e4, -float("inf"), float("nan")] + [-1.0] * 6)
    for i in range(50_000):
        switch.update(extreme if i % 1000 == 0 else -torch.rand(10, generator=generator))
    switch.steps = 1_000_000  # the same renormalised recursion, deep into training
    for _ in range(20_000):
        switch.update(-torch.rand(10, generator=generator) * 3)
    for _ in range(10):
        switch.update(torch.full((10,), -float("inf")))  # every copy diverged at once
    assert torch.isfinite(switch.log_weights).all()
    assert torch.isfinite(switch.log_posterior).all()
    assert switch.posterior.sum().item() == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("theta", [0.0, 0.5, 0.999, 1.0])
def test_the_host_recursion_stays_exact_where_linear_weights_underflow(theta):
    # Gaps of thousands of nats: exp() of the weights relative to the largest gives 0,
    # which the host recursion must not let turn into -inf or lose (the row without
    # switched mass stays in log space). The device recursion never leaves log space.
    host, device = Switch(4, theta=theta), Switch(4, theta=theta)
    generator = torch.Generator().manual_seed(3)
    for step in range(200):
        log_p = -torch.rand(4, generator=generator, dtype=torch.float64) * 3
        if step % 3 == 0:
            log_p[step % 4] -= 5000.0
        for switch, update in ((host, HOST_UPDATE), (device, DEVICE_UPDATE)):
            switch.steps += 1
            update(switch, log_p)
        finite = torch.isfinite(device.log_weights)
        assert torch.equal(torch.isfinite(host.log_weights), finite)
        assert torch.allclose(host.log_weights[finite], device.log_weights[finite], rtol=1e-9, atol=1e-9)
        assert torch.allclose(host.log_posterior, device.log_posterior, rtol=1e-5, atol=1e-5)


def test_state_dict_round_trip():
    switch = Switch(3)
    for _ in range(7):
        switch.update(-torch.rand(3))
    restored = Switch(3)
    restored.load_state_dict(switch.state_dict())
    assert restored.steps == 7
    assert torch.equal(restored.log_weights, switch.log_weights)
    update = torch.tensor([-0.1, -0.2, -0.3])
    switch.update(update)
    restored.update(update)
    assert torch.equal(restored.posterior, switch.posterior)


CASTS = {
    "half": lambda m: m.half(),
    "float": lambda m: m.float(),
    "bfloat16": lambda m: m.bfloat16(),
    "to float32": lambda m: m.to(torch.float32),
    "double": lambda m: m.double(),
}


@pytest.mark.parametrize("cast", CASTS.values(), ids=list(CASTS))
def test_dtype_casts_keep_the_state_float64(cast):
    switch = Switch(4)
    for _ in range(5):
        switch.update(-torch.rand(4, dtype=torch.float64) * 3)
    before = switch.log_weights.clone()
    cast(switch)
    assert switch.log_weights.dtype == switch.log_prior.dtype == torch.float64
    assert torch.equal(switch.log_weights, before)  # not a round trip through low precision
    # In float16, the vanishing log-likelihood -1e30 of a diverged copy is -inf, and a
    # step where every copy diverged made the posterior NaN.
    switch.update(torch.full((4,), -float("inf")))
    assert torch.isfinite(switch.log_weights).all()
    assert torch.isfinite(switch.log_posterior).all()
    assert switch.posterior.sum().item() == pytest.approx(1.0, abs=1e-12)
    expected = torch.logsumexp(switch.log_weights, dim=0)  # the posterior follows the cast
    assert torch.allclose(switch.log_posterior.double(), expected, atol=1e-2)


@pytest.mark.parametrize(
    "model_device, home",
    [("mps", "cpu"), ("cuda", "cuda"), ("cuda:1", "cuda:1"), ("cpu", "cpu")],
)
def test_the_state_lives_with_the_model_unless_its_device_has_no_float64(model_device, home):
    assert state_device(torch.device(model_device)) == torch.device(home)


def test_on_a_device_without_float64_the_state_stays_on_the_host(monkeypatch):
    # No MPS here: "meta" stands for it, with a conversion that refuses float64 as MPS does.
    monkeypatch.setattr(switch_module, "_NO_FLOAT64", frozenset({"meta"}))

    def to_mps_like(t):
        if t.dtype == torch.float64:
            raise TypeError("Cannot convert a MPS Tensor to float64 dtype")
        return t.to("meta")

    switch = Switch(3)
    switch.update(torch.tensor([-0.1, -0.2, -0.3]))
    before = switch.log_weights.clone()
    switch._apply(to_mps_like)
    assert switch.log_posterior.device.type == "meta"
    assert switch.log_weights.device.type == switch.log_prior.device.type == "cpu"
    assert switch.log_weights.dtype == torch.float64 and torch.equal(switch.log_weights, before)


def test_on_the_cpu_moving_and_casting_change_nothing():
    moved, still = Switch(3), Switch(3)
    weights = moved.log_weights
    moved.to("cpu").float()
    assert moved.log_weights is weights  # the same tensor: no copy, no conversion
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        log_p = -torch.rand(3, generator=generator)
        moved.update(log_p)
        still.update(log_p)
    assert torch.equal(moved.log_weights, still.log_weights)
    assert torch.equal(moved.log_posterior, still.log_posterior)
