"""The switch posterior against a brute-force enumeration of switch sequences."""

from __future__ import annotations

import pytest
import torch

from alrao_cli import Switch
from alrao_cli.alrao import reference
from alrao_cli.alrao import switch as switch_module
from alrao_cli.alrao.switch import state_device

# Both recursions as written, before the fixture below replaces one by the other.
HOST_UPDATE, DEVICE_UPDATE = Switch._update_on_host, Switch._update_on_device

@pytest.fixture(params=["host", "device"])
def recursion(request, monkeypatch):
    """Run every test on both implementations: numpy (CPU) and tensor ops (GPUs)."""
    if request.param == "device":
        monkeypatch.setattr(Switch, "_update_on_host", Switch._update_on_device)
    return request.param


pytestmark = pytest.mark.usefixtures("recursion")


def random_log_likelihoods(n_steps: int, n_copies: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(n_steps, n_copies, generator=generator, dtype=torch.float64) + 0.05).log()


def with_diverged_copy() -> torch.Tensor:
    log_p = random_log_likelihoods(5, 3, seed=2)
    log_p[1, 2], log_p[3, 2] = -float("inf"), float("nan")  # copy 2 diverged twice: p = 0
    return log_p


def one_copy_far_ahead() -> torch.Tensor:
    log_p = random_log_likelihoods(5, 3, seed=4)
    log_p[:3, 0] += 4.0  # copy 0 is e^4 times likelier for a while, then not
    return log_p


RUNS = {
    "3 copies": random_log_likelihoods(5, 3, seed=1),
    "2 copies, 6 steps": random_log_likelihoods(6, 2, seed=5),
    "4 copies": random_log_likelihoods(4, 4, seed=6),
    "a diverged copy": with_diverged_copy(),
    "one copy far ahead": one_copy_far_ahead(),
    "one copy": random_log_likelihoods(4, 1, seed=7),
}


def posteriors_of_switch(switch: Switch, log_likelihoods: torch.Tensor) -> torch.Tensor:
    """The posterior before any update, then after each: ``[T+1, N]``, like the reference's."""
    rows = [switch.posterior.clone()]
    for log_p in log_likelihoods:
        switch.update(log_p)
        rows.append(switch.posterior.clone())
        assert torch.allclose(switch.log_posterior.exp().double(), switch.posterior, atol=1e-6)
    return torch.stack(rows)


@pytest.mark.parametrize("theta", [0.0, 0.3, 0.9, 0.999, 1.0])
@pytest.mark.parametrize("log_likelihoods", RUNS.values(), ids=list(RUNS))
def test_switch_matches_enumeration(log_likelihoods, theta):
    switch = Switch(log_likelihoods.shape[1], theta=theta)
    expected = reference.switch_posteriors(log_likelihoods, theta)
    assert torch.allclose(posteriors_of_switch(switch, log_likelihoods), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("theta", [0.3, 0.999])
def test_the_papers_printed_indexing_is_the_switch_one_observation_later(theta):
    """Appendix A prints ``t_1 = 1``, with ``t_l`` the first observation of segment l: a
    switch after observation t then has probability 1/(t+2), not the 1/(t+1) of van Erven
    et al.'s Algorithm 1, of the paper's released code and of ``Switch``. That reading is
    exactly a switch whose count starts one observation later; ``Switch`` is not it."""
    log_likelihoods = RUNS["3 copies"]
    printed = reference.switch_posteriors(log_likelihoods, theta, first_time=1)
    late = Switch(3, theta=theta)
    late.steps = 1
    assert torch.allclose(posteriors_of_switch(late, log_likelihoods), printed, rtol=0, atol=1e-12)
    ours = posteriors_of_switch(Switch(3, theta=theta), log_likelihoods)
    assert (ours - printed).abs().max() > 1e-3


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
    """Runs 8,000 updates, not a million: 5,000 from the start (diverged copies mixed
    in), then 3,000 with the observation count set to 1,000,000.

    That stands for a million because the recursion reads the count t only through the
    switch probability 1/(t+1) (as log1p(t), and log(t) for 1 - 1/(t+1)), and its state
    is renormalised at every step, so nothing else grows with t: what could go wrong at
    step 10^6 is a switch probability of 10^-6 meeting well-worn weights, and this is it.
    A real million updates would take a minute instead of a second.
    """
    switch = Switch(10)
    generator = torch.Generator().manual_seed(0)
    extreme = torch.tensor([0.0, -1e4, -float("inf"), float("nan")] + [-1.0] * 6)
    for i in range(5_000):
        switch.update(extreme if i % 250 == 0 else -torch.rand(10, generator=generator))
    switch.steps = 1_000_000  # the same renormalised recursion, deep into training
    for _ in range(3_000):
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
