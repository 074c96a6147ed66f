"""The LR range test on hand-made loss curves and a tiny regression, and the 1cycle shape."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from alrao_cli.optimizers import lr_range_test, one_cycle, range_test_step


class Curve:
    """A ``step(lr)`` that replays a fixed loss curve and remembers the rates it was given."""

    def __init__(self, losses: list[float]) -> None:
        self.losses = losses
        self.lrs: list[float] = []

    def __call__(self, lr: float) -> float:
        self.lrs.append(lr)
        return self.losses[len(self.lrs) - 1]


def sweep(start: float, end: float, n: int) -> list[float]:
    return [start * (end / start) ** (i / (n - 1)) for i in range(n)]


@pytest.mark.parametrize(
    "losses, stop_index, min_index",
    [
        ([5.0, 4.0, 3.0, 2.0, 1.5, 1.2, 3.0, 6.0, 1.0, 1.0], 7, 5),  # 6.0 > 4 * 1.2: stop
        ([5.0, 4.0, 3.0, math.nan, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], 3, 2),  # not finite: stop
        ([5.0, 4.0, 3.0, math.inf, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], 3, 2),
        ([5.0, 2.0, 1.0, 3.9, 4.0, 4.1, 1.0, 1.0, 1.0, 1.0], 5, 2),  # 4.0 is not above 4 * 1.0, 4.1 is
    ],
    ids=["rise-above-4x", "nan", "inf", "exactly-4x-goes-on"],
)
def test_stops_at_divergence_and_suggests_a_tenth_of_the_min_loss_rate(losses, stop_index, min_index):
    curve = Curve(losses)
    result = lr_range_test(curve, start_lr=1e-3, end_lr=1.0, num_steps=len(losses), smoothing=0.0)
    lrs = sweep(1e-3, 1.0, len(losses))
    assert len(curve.lrs) == stop_index + 1  # the divergent step is the last one taken
    assert curve.lrs == pytest.approx(lrs[: stop_index + 1], rel=1e-12)
    assert result.diverged_at == pytest.approx(lrs[stop_index], rel=1e-12)
    assert result.losses == losses[:stop_index]
    assert result.min_loss_lr == pytest.approx(lrs[min_index], rel=1e-12)
    assert result.suggested_lr == pytest.approx(lrs[min_index] / 10, rel=1e-12)


def test_smoothed_loss_is_the_bias_corrected_moving_average():
    losses = [4.0, 2.0, 3.0, 1.0]
    result = lr_range_test(Curve(losses), start_lr=0.01, end_lr=0.1, num_steps=4, smoothing=0.5)
    avg1 = 0.5 * 4.0
    avg2 = 0.5 * avg1 + 0.5 * 2.0
    avg3 = 0.5 * avg2 + 0.5 * 3.0
    avg4 = 0.5 * avg3 + 0.5 * 1.0
    want = [avg1 / 0.5, avg2 / 0.75, avg3 / 0.875, avg4 / 0.9375]
    assert result.smoothed == pytest.approx(want, rel=1e-12)
    assert result.diverged_at is None
    assert result.lrs[-1] == pytest.approx(0.1, rel=1e-12)
    assert result.min_loss_lr == pytest.approx(0.1, rel=1e-12)  # smoothed minimum is the last point


def test_divergence_is_judged_on_the_smoothed_loss():
    """One spike at 5x the best raw loss is absorbed by the average: the test goes on."""
    losses = [2.0, 1.0, 1.0, 5.0, 1.0, 1.0]
    curve = Curve(losses)
    result = lr_range_test(curve, start_lr=0.01, end_lr=1.0, num_steps=6, smoothing=0.5)
    assert result.diverged_at is None
    assert len(curve.lrs) == 6


def test_a_loss_that_is_never_finite_is_refused():
    with pytest.raises(ValueError, match="first rate"):
        lr_range_test(Curve([math.nan] * 5), num_steps=5)


@pytest.mark.parametrize(
    "kwargs",
    [{"start_lr": 1.0, "end_lr": 0.1}, {"num_steps": 1}, {"smoothing": 1.0}],
    ids=["reversed-range", "one-step", "smoothing-one"],
)
def test_bad_arguments_are_refused(kwargs):
    with pytest.raises(ValueError):
        lr_range_test(Curve([1.0] * 10), **kwargs)


def test_on_least_squares_the_suggestion_is_stable_and_divergence_past_the_limit():
    """Full-batch gradient descent on a quadratic diverges above 2 / lambda_max."""
    torch.manual_seed(0)
    x = torch.randn(64, 4, dtype=torch.float64)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]], dtype=torch.float64)
    limit = 2 / float(torch.linalg.eigvalsh(2 * x.T @ x / 64).max())
    model = torch.nn.Linear(4, 1, bias=False).double()
    torch.nn.init.zeros_(model.weight)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    step = range_test_step(model, optimizer, F.mse_loss, [(x, y)])
    result = lr_range_test(step, start_lr=1e-4, end_lr=10.0, num_steps=60, smoothing=0.9)
    assert result.suggested_lr < limit < result.diverged_at
    assert result.smoothed[-1] < result.smoothed[0]  # it did learn before diverging
    assert optimizer.param_groups[0]["lr"] == pytest.approx(result.diverged_at)  # the step set the rate


def test_range_test_step_cycles_through_the_batches():
    seen = []
    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    batches = [(torch.ones(1, 1) * i, torch.zeros(1, 1)) for i in range(2)]
    step = range_test_step(model, optimizer, lambda out, y: (seen.append(float(out.detach())) or out.sum()), batches)
    for _ in range(3):
        step(0.0)
    assert seen[0] == seen[2] != seen[1]


def test_one_cycle_has_three_linear_phases_at_the_suggested_rate():
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0, momentum=0.9)
    schedule = one_cycle(optimizer, max_lr=0.1, total_steps=100)
    lrs, momenta = [], []
    for _ in range(100):
        lrs.append(optimizer.param_groups[0]["lr"])
        momenta.append(optimizer.param_groups[0]["momentum"])
        optimizer.step()
        schedule.step()
    start = 0.1 / 20
    assert lrs[0] == pytest.approx(start)
    assert max(lrs) == pytest.approx(0.1) and lrs.index(max(lrs)) == 44  # 45% of the steps up
    assert lrs[88] == pytest.approx(start)  # as many down
    assert lrs[99] == pytest.approx(start / 1e4)  # then annihilation
    assert lrs[22] == pytest.approx((start + 0.1) / 2, rel=1e-2)  # linear, not cosine
    assert momenta[0] == pytest.approx(0.95) and momenta[44] == pytest.approx(0.85)


@pytest.mark.parametrize(
    "make, key, cycles",
    [
        (lambda ps: torch.optim.SGD(ps, lr=1.0), "momentum", False),
        (lambda ps: torch.optim.Adam(ps, lr=1.0), "betas", True),
    ],
    ids=["sgd-without-momentum", "adam"],
)
def test_one_cycle_cycles_momentum_only_where_there_is_one(make, key, cycles):
    optimizer = make(torch.nn.Linear(2, 1).parameters())
    before = optimizer.param_groups[0][key]
    schedule = one_cycle(optimizer, max_lr=0.1, total_steps=10)
    for _ in range(3):
        optimizer.step()
        schedule.step()
    assert (optimizer.param_groups[0][key] != before) == cycles
