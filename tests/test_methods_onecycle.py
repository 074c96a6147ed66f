"""1cycle inside one run: the range test on the first batches, the way back to the initial weights, the suggestion."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from alrao_cli.errors import AlraoUserError
from alrao_cli.optimizers import one_cycle
from alrao_cli.study.methods import get_method
from alrao_cli.study.methods.base import LearnerContext
from alrao_cli.study.methods.onecycle import OneCycleOptions
from alrao_cli.study.spec import MethodSpec


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(40, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10))


def batches(count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(7)
    return [(torch.randn(8, 40, generator=generator), torch.randint(0, 10, (8,), generator=generator)) for _ in range(count)]


def learner(net: nn.Module, total_steps: int | None, **options):
    spec = MethodSpec("onecycle", options=OneCycleOptions(**options))
    return get_method("onecycle").learner(net, spec, LearnerContext(10, "classification", 0, total_steps=total_steps))


def test_after_the_range_test_1cycle_trains_from_the_initial_weights_at_the_suggested_rate():
    net = model()
    initial = copy.deepcopy(net)
    onecycle = learner(net, total_steps=40, range_steps=12, end_lr=1.0)
    data = batches(40)
    step = 0
    while onecycle.range_test() is None:
        onecycle.train_step(*data[step])
        step += 1
    result = onecycle.range_test()
    cost = onecycle.range_test_steps
    assert cost == step - 1 == len(result.losses) - (result.diverged_at is None)  # the last batch opened the cycle

    # An independent 1cycle run from the initial weights, starting with the batch that ended the test.
    optimizer = torch.optim.SGD(initial.parameters(), lr=1e-7, momentum=0.9)
    schedule = one_cycle(optimizer, result.suggested_lr, 40 - cost)
    for x, y in data[cost:step + 4]:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(initial(x), y).backward()
        optimizer.step()
        schedule.step()
    for x, y in data[step:step + 4]:
        onecycle.train_step(x, y)
    for mine, reference in zip(onecycle.module.state_dict().values(), initial.state_dict().values()):
        assert torch.equal(mine, reference)
    assert onecycle.rates() == {"lr": optimizer.param_groups[0]["lr"]}
    explained = onecycle.explain()
    assert explained["range_test_steps"] == cost and explained["cycle_steps"] == 40 - cost
    assert explained["max_lr"] == result.suggested_lr


def test_the_suggestion_is_a_tenth_of_the_rate_of_the_lowest_smoothed_loss():
    onecycle = learner(model(), total_steps=30, range_steps=15, start_lr=1e-4, end_lr=1.0)
    for x, y in batches(30):
        onecycle.train_step(x, y)
    record = onecycle.explain()["range_test"]
    lrs, losses = record["lrs"], record["losses"]
    assert record["diverged_at"] is None and len(lrs) == 15  # this sweep stays stable: all of it is measured
    for i, lr in enumerate(lrs):  # the exponential sweep
        assert lr == pytest.approx(1e-4 * (1.0 / 1e-4) ** (i / 14), rel=1e-12)
    smoothed, average = [], 0.0
    for i, loss in enumerate(losses):  # fastai's bias-corrected moving average, by hand
        average = 0.98 * average + 0.02 * loss
        smoothed.append(average / (1 - 0.98 ** (i + 1)))
    assert record["smoothed"] == pytest.approx(smoothed, rel=1e-12)
    best = min(range(len(smoothed)), key=smoothed.__getitem__)
    assert record["min_loss_lr"] == lrs[best] and record["suggested_lr"] == lrs[best] / 10


def test_the_range_test_stops_where_the_loss_diverges():
    onecycle = learner(model(), total_steps=60, range_steps=50, start_lr=1e-3, end_lr=1e6)
    for x, y in batches(60):
        onecycle.train_step(x, y)
        assert math.isfinite(float(onecycle.rates()["lr"]))
    record = onecycle.explain()["range_test"]
    assert record["diverged_at"] is not None and len(record["lrs"]) < 49
    stopping_loss = onecycle.measured[-1]  # measured, and left out of the record
    smoothed_stop = (0.98 * (record["smoothed"][-1] * (1 - 0.98 ** len(record["lrs"]))) + 0.02 * stopping_loss) / (
        1 - 0.98 ** (len(record["lrs"]) + 1)
    )
    assert not math.isfinite(stopping_loss) or smoothed_stop > 4 * min(record["smoothed"])
    assert onecycle.explain()["range_test_steps"] == len(record["lrs"])


def test_onecycle_needs_the_runs_number_of_steps():
    with pytest.raises(AlraoUserError, match="onecycle needs the run's number of steps"):
        learner(model(), total_steps=None)
    with pytest.raises(AlraoUserError, match="at least 102 steps") as error:
        learner(model(), total_steps=50)
    assert "range_steps" in error.value.hint
    learner(model(), total_steps=102)  # the shortest run: the cycle keeps 3 steps however the test ends


def test_bad_range_test_options_are_the_users_to_fix():
    with pytest.raises(AlraoUserError, match="start_lr < end_lr"):
        learner(model(), total_steps=200, start_lr=1.0, end_lr=0.1)
