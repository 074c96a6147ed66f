"""The reference itself, against closed forms and torch's own optimizers.

The fast paths are tested against ``alrao_cli.alrao.reference``; these tests are what
makes agreeing with it mean something.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from alrao_cli.alrao import reference

# -- the switch ------------------------------------------------------------------------

PRIOR_CASES = {  # steps, copies, theta, first time
    "T=0": (0, 3, 0.5, 0),
    "T=1": (1, 2, 0.999, 0),
    "T=3 N=3": (3, 3, 0.3, 0),
    "t1=1": (4, 2, 0.9, 1),
    "theta=0": (5, 2, 0.0, 0),
    "theta=1 t1=1": (5, 2, 1.0, 1),
}


@pytest.mark.parametrize("n_steps, n_copies, theta, first_time", PRIOR_CASES.values(), ids=list(PRIOR_CASES))
def test_the_enumerated_sequences_carry_the_whole_prior(n_steps, n_copies, theta, first_time):
    """Every infinite sequence begins in exactly one enumerated way: the masses sum to one."""
    sequences = list(reference.switch_sequences(n_steps, n_copies, theta, first_time=first_time))
    assert math.fsum(s.prior for s in sequences) == pytest.approx(1.0, abs=1e-12)
    starts = {(s.switch_points, s.copies) for s in sequences}
    assert len(starts) == len(sequences) == n_copies * (n_copies + 1) ** n_steps


def test_the_switch_time_prior_is_the_papers():
    assert [reference.switch_time_prior(t) for t in (1, 2, 3)] == [1 / 2, 1 / 6, 1 / 12]
    for t in range(6):  # the mass after t, summed the long way, is the closed form 1/(t+1)
        assert reference.switch_time_tail(t) == pytest.approx(1 / (t + 1), abs=1e-15)


def test_without_switches_the_posterior_is_bayes():
    """theta = 0 allows no switch: the posterior is proportional to the product of likelihoods."""
    log_p = torch.rand(5, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64).log()
    expected = torch.softmax(torch.cat([torch.zeros(1, 3, dtype=torch.float64), log_p.cumsum(0)]), dim=1)
    assert torch.allclose(reference.switch_posteriors(log_p, theta=0.0), expected, rtol=0, atol=1e-14)


def test_a_switch_after_the_first_observation_has_probability_one_half():
    """With two copies, theta = 1 and one observation that copy 0 gave all the probability:
    copy 0 is still in use with probability 1 - 1/2 + 1/2 * 1/2 (a switch to itself)."""
    log_p = torch.tensor([[0.0, -math.inf]], dtype=torch.float64)
    posterior = reference.switch_posteriors(log_p, theta=1.0)
    assert posterior[1].tolist() == pytest.approx([0.75, 0.25], abs=1e-15)
    printed = reference.switch_posteriors(log_p, theta=1.0, first_time=1)  # switch probability 1/3
    assert printed[1].tolist() == pytest.approx([1 - 1 / 3 + 1 / 6, 1 / 6], abs=1e-15)


# -- the loss --------------------------------------------------------------------------


def loss_inputs(regression: bool, n_copies: int = 3):
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(6, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(n_copies, 3, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(n_copies, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    if regression:
        target = torch.randn(6, 3, generator=generator, dtype=torch.float64)
    else:
        target = torch.randint(0, 3, (6,), generator=generator)
    log_posterior = torch.log_softmax(torch.randn(n_copies, generator=generator, dtype=torch.float64), 0)
    return z, weight, bias, target, log_posterior


@pytest.mark.parametrize("regression", [False, True], ids=["classification", "regression"])
def test_each_loss_reaches_only_what_it_trains(regression):
    z, weight, bias, target, log_posterior = loss_inputs(regression)
    slow = reference.two_path_loss(z, weight, bias, target, log_posterior, regression)
    grads = torch.autograd.grad(slow.mixture_loss, [z, weight, bias], allow_unused=True, retain_graph=True)
    assert grads[0] is not None and grads[1] is None and grads[2] is None
    for j in range(3):
        own = slow.own_losses[j]
        grads = torch.autograd.grad(own, [z, weight, bias], allow_unused=True, retain_graph=True)
        assert grads[0] is None
        others = torch.arange(3) != j
        assert grads[1][j].abs().sum() > 0 and torch.count_nonzero(grads[1][others]) == 0
        assert grads[2][j].abs().sum() > 0 and torch.count_nonzero(grads[2][others]) == 0


@pytest.mark.parametrize("regression", [False, True], ids=["classification", "regression"])
def test_the_losses_are_the_textbook_ones(regression):
    """Cross-entropy, or the unit Gaussian's negative log-density written out."""
    z, weight, bias, target, log_posterior = loss_inputs(regression)
    slow = reference.two_path_loss(z, weight, bias, target, log_posterior, regression)
    outputs = [z @ weight[j].T + bias[j] for j in range(3)]
    if regression:
        own = [((o - target) ** 2 / 2 + math.log(2 * math.pi) / 2).sum(1).mean() for o in outputs]
        mixture = [torch.exp(-((o - target) ** 2 / 2 + math.log(2 * math.pi) / 2).sum(1)) for o in outputs]
    else:
        own = [F.cross_entropy(o, target) for o in outputs]
        mixture = [torch.softmax(o, 1).gather(1, target.view(-1, 1)).squeeze(1) for o in outputs]
    assert torch.allclose(slow.own_losses, torch.stack(own), rtol=1e-12)
    p_mix = sum(a * p for a, p in zip(log_posterior.exp(), mixture))
    assert torch.allclose(slow.mixture_loss, -p_mix.log().mean(), rtol=1e-12)
    assert torch.equal(slow.copy_log_likelihoods, -slow.own_losses.detach())


def test_one_copy_is_its_own_mixture():
    z, weight, bias, target, _ = loss_inputs(False, n_copies=1)
    slow = reference.two_path_loss(z, weight, bias, target, torch.zeros(1, dtype=torch.float64), False)
    assert torch.allclose(slow.mixture_loss, slow.own_losses[0], rtol=1e-14)
    prediction = reference.mixture_prediction(z, weight, bias, torch.zeros(1, dtype=torch.float64), False)
    assert torch.allclose(prediction, F.log_softmax(z @ weight[0].T + bias[0], 1), rtol=1e-14)


# -- the rates -------------------------------------------------------------------------


def test_each_unit_has_one_rate_in_range_and_the_seed_fixes_them():
    layer = nn.Linear(3, 50)
    rates = reference.feature_rates(layer, 1e-4, 1.0, seed=1)
    assert torch.equal(rates["weight"], rates["bias"].view(-1, 1).expand(50, 3))
    assert rates["bias"].unique().numel() == 50
    assert rates["bias"].min() >= 1e-4 and rates["bias"].max() <= 1.0
    assert torch.equal(reference.feature_rates(layer, 1e-4, 1.0, seed=1)["bias"], rates["bias"])
    assert not torch.equal(reference.feature_rates(layer, 1e-4, 1.0, seed=2)["bias"], rates["bias"])


def test_a_transposed_convolutions_channel_is_a_column_of_its_groups_rows():
    layer = nn.ConvTranspose1d(4, 6, 2, groups=2)  # weight [4, 3, 2]: rows 0-1 are group 0
    rates = reference.feature_rates(layer)
    weight, bias = rates["weight"], rates["bias"]
    for channel in range(6):
        group, column = divmod(channel, 3)
        assert torch.all(weight[2 * group : 2 * group + 2, column] == bias[channel])


# -- the optimizers --------------------------------------------------------------------

OPTIMIZER_CASES = {
    "sgd": (reference.sgd_step, {}, lambda p: torch.optim.SGD(p, lr=0.1)),
    "sgd momentum": (
        reference.sgd_step, {"momentum": 0.9, "weight_decay": 1e-2},
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-2),
    ),
    "sgd nesterov": (
        reference.sgd_step, {"momentum": 0.5, "nesterov": True},
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.5, nesterov=True),
    ),
    "adam": (reference.adam_step, {}, lambda p: torch.optim.Adam(p, lr=0.1)),
    "adam weight decay": (
        reference.adam_step, {"betas": (0.5, 0.9), "weight_decay": 1e-2},
        lambda p: torch.optim.Adam(p, lr=0.1, betas=(0.5, 0.9), weight_decay=1e-2),
    ),
}


@pytest.mark.parametrize("step, options, make_torch", OPTIMIZER_CASES.values(), ids=list(OPTIMIZER_CASES))
def test_with_one_rate_the_reference_steps_are_torchs(step, options, make_torch):
    """Including a parameter whose first gradient comes at the fourth step: torch's Adam
    counts steps per parameter too."""
    generator = torch.Generator().manual_seed(0)
    shapes = [(4, 3), (3,), (2, 2, 2)]
    params = [torch.randn(s, generator=generator, dtype=torch.float64) for s in shapes]
    twins = [p.clone().requires_grad_(True) for p in params]
    params = [p.requires_grad_(True) for p in params]
    optimizer = make_torch(twins)
    states = [{} for _ in params]
    rates = [torch.tensor(0.1, dtype=torch.float64)] * len(params)
    for t in range(6):
        for p, q in zip(params, twins):
            grad = torch.randn(p.shape, generator=generator, dtype=torch.float64)
            late = p is params[1] and t < 3
            p.grad, q.grad = (None, None) if late else (grad, grad.clone())
        step(params, rates, states, **options)
        optimizer.step()
        for p, q in zip(params, twins):
            assert torch.allclose(p, q, rtol=1e-12, atol=1e-14)
