"""Every registered method, through the registry's one door: builds, trains, resumes, repeats, reports its rates."""

from __future__ import annotations

import io
import json
import math
from dataclasses import fields

import pytest
import torch
from torch import nn

from alrao_cli.data.datasets import InMemoryDataset
from alrao_cli.study.methods import _registry, get_method
from alrao_cli.study.methods.base import LearnerContext, RunData
from alrao_cli.study.spec import MethodOptions, MethodSpec

NAMES = list(_registry())
ONE_RUN_NEW = [
    "sgd-hd", "adam-hd", "mlhd", "mlhd-adam", "onecycle", "prodigy", "dadapt-sgd", "dadapt-adam", "dog", "ldog",
    "sf-sgd", "sf-adamw",
]
GRID_NEW = ["lars", "larc", "layerwise"]
GRID_LR = 0.05  # the rate a method tuned over the grid gets here
TOTAL_STEPS = 14  # the run's length, for 1cycle
ONECYCLE_RANGE_STEPS = 6  # its range test then ends at step 6 at the latest: a checkpoint at 3 falls inside, at 9 after
BATCHES = 16
BATCH = 8


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread, and a busy machine's spinning second thread costs seconds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(40, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10))


def data() -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(123)
    return [
        (torch.randn(BATCH, 40, generator=generator), torch.randint(0, 10, (BATCH,), generator=generator))
        for _ in range(BATCHES)
    ]


def spec_of(name: str) -> MethodSpec:
    method = get_method(name)
    options = method.options_type(range_steps=ONECYCLE_RANGE_STEPS) if name == "onecycle" else None
    if name == "alrao":  # the paper's method, small: three output copies
        options = method.options_type(copies=3)
    if name == "reversible-hd":  # two rounds of tuning, four steps a block, a meta set of two batches
        options = method.options_type(meta_iters=2, meta_size=2 * BATCH)
    return MethodSpec(name, lr=GRID_LR if method.tuned_over_grid else None, options=options)


def run_data() -> RunData:
    """The training split the loop would give: the methods that learn their rate draw their meta data from it."""
    batches = data()
    train_set = InMemoryDataset(torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches]))
    return RunData("tiny", train_set, BATCH, BATCHES)


def learner_of(name: str, seed: int = 0):
    """The learner as the loop sets it up: built, then its work before the first step done."""
    batches = data()
    context = LearnerContext(
        10, "classification", seed, example_input=batches[0][0], total_steps=TOTAL_STEPS, run=run_data()
    )
    learner = get_method(name).learner(tiny_model(seed), spec_of(name), context)
    learner.before_training(lambda: None)
    return learner


def validate(learner, batches) -> torch.Tensor:
    """What the loop does at an epoch's end: the hook, then evaluation in eval mode."""
    learner.module.eval()
    with torch.no_grad():
        learner.prepare_evaluation(iter(batches))
        losses, _ = learner.evaluate(*batches[0])
    learner.module.train()
    return losses


def train(learner, batches) -> list[torch.Tensor]:
    learner.module.train()
    return [learner.train_step(x, y) for x, y in batches]


def flat(state, prefix: str = "") -> dict[str, object]:
    """A nested state as ``{path: tensor or plain value}``, tensors copied."""
    if isinstance(state, dict):
        return {path: value for key, inner in state.items() for path, value in flat(inner, f"{prefix}{key}.").items()}
    return {prefix: state.detach().clone() if isinstance(state, torch.Tensor) else state}


def snapshot(learner) -> dict[str, object]:
    return flat(learner.module.state_dict())


def assert_identical(first: dict[str, object], second: dict[str, object]) -> None:
    assert first.keys() == second.keys()
    for name, value in first.items():
        same = torch.equal(value, second[name]) if isinstance(value, torch.Tensor) else value == second[name]
        assert same, name


def test_the_registry_lists_every_new_method_once_with_its_description():
    assert set(ONE_RUN_NEW + GRID_NEW) <= set(NAMES)
    assert NAMES[:3] == ["alrao", "sgd", "adam"]
    for name in ONE_RUN_NEW + GRID_NEW:
        method = get_method(name)
        assert method.name == name and method.label and method.paper
        assert (type(method).__doc__ or "").strip(), name
        assert method.tuned_over_grid == (name in GRID_NEW)


@pytest.mark.parametrize("name", ONE_RUN_NEW + GRID_NEW)
def test_options_are_typed_frozen_and_saved_as_strict_json(name):
    options = get_method(name).options_type()
    assert isinstance(options, MethodOptions)
    assert not hasattr(options, "__dict__")  # slots
    with pytest.raises(AttributeError):
        setattr(options, fields(options)[0].name, 0)  # frozen
    plain = json.loads(json.dumps(options.to_dict(), allow_nan=False))  # no inf, no NaN
    assert type(options).from_dict(plain) == options


@pytest.mark.parametrize("name", NAMES)
def test_every_method_trains_a_tiny_model(name):
    learner = learner_of(name)
    before = snapshot(learner)
    losses = torch.stack(train(learner, data()[:6]))
    assert losses.shape == (6,) and bool(torch.isfinite(losses).all())
    after = snapshot(learner)
    assert any(isinstance(v, torch.Tensor) and not torch.equal(before[k], v) for k, v in after.items())
    learner.module.eval()
    with torch.no_grad():
        example_losses, labels = learner.evaluate(*data()[0])
    assert example_losses.shape == (BATCH,) and bool(torch.isfinite(example_losses).all())
    assert labels is not None and labels.shape == (BATCH,)


def run(name: str, validate_at: int = 9, interrupt: bool = False):
    """Train on every batch, validating after ``validate_at`` steps, as the loop does at an
    epoch's end; there, if ``interrupt``, the learner goes through a checkpoint into a
    learner built from another seed. Returns what must not depend on the interruption."""
    batches = data()
    learner = learner_of(name, seed=0)
    losses = train(learner, batches[:validate_at])
    validate(learner, batches)
    if interrupt:
        buffer = io.BytesIO()
        torch.save(learner.state_dict(), buffer)
        buffer.seek(0)
        state = torch.load(buffer, weights_only=True)  # what the run checkpoint's loader accepts
        learner = learner_of(name, seed=1)
        learner.load_state_dict(state)
    losses += train(learner, batches[validate_at:])
    return torch.stack(losses), snapshot(learner), validate(learner, batches), learner.rates(), learner.explain()


@pytest.mark.parametrize("name", NAMES)
def test_a_resumed_learner_continues_exactly(name):
    for at in [3, 9] if name == "onecycle" else [9]:  # 1cycle: inside its range test, and after it
        reference, resumed = run(name, at), run(name, at, interrupt=True)
        assert torch.equal(resumed[0], reference[0]), at
        assert_identical(resumed[1], reference[1])
        assert torch.equal(resumed[2], reference[2])
        assert resumed[3] == reference[3]
        assert json.dumps(resumed[4], sort_keys=True) == json.dumps(reference[4], sort_keys=True)


@pytest.mark.parametrize("name", NAMES)
def test_the_same_seed_gives_the_same_numbers(name):
    first, second = run(name), run(name)
    assert torch.equal(first[0], second[0])
    assert_identical(first[1], second[1])
    assert first[3] == second[3]


@pytest.mark.parametrize("name", [n for n in NAMES if n != "alrao"])  # Alrao's rates are fixed, in explain()
def test_rates_are_finite_and_positive(name):
    learner = learner_of(name)
    train(learner, data()[:4])
    rates = learner.rates()
    assert rates and "lr" in rates
    assert all(isinstance(v, float) and math.isfinite(v) and v > 0 for v in rates.values()), rates
    if "lr_min" in rates:
        assert rates["lr_min"] <= rates["lr"] <= rates["lr_max"] or name == "layerwise"
    json.dumps(learner.explain(), allow_nan=False)


def test_plain_and_hypergradient_rates_are_their_optimizers_rates():
    sgd = get_method("sgd").learner(tiny_model(0), MethodSpec("sgd", lr=0.1), LearnerContext(10, "classification", 0))
    assert sgd.rates() == {"lr": 0.1}
    hd = learner_of("sgd-hd")
    train(hd, data()[:3])
    assert hd.rates() == {"lr": hd.optimizer.current_lrs()[0]} and hd.rates()["lr"] != 1e-3


def test_layerwise_rates_go_from_ratio_times_lr_at_the_input_to_lr_at_the_output():
    learner = learner_of("layerwise")
    lrs = [group["lr"] for group in learner.optimizer.param_groups]
    assert [group["layer"] for group in learner.optimizer.param_groups] == ["1", "2", "4"]
    assert lrs == pytest.approx([20 * GRID_LR, 10.5 * GRID_LR, GRID_LR])
    assert learner.rates() == {"lr": lrs[-1], "lr_min": min(lrs), "lr_max": max(lrs)}
    options = get_method("layerwise").options_type(spacing="geometric")
    geometric = get_method("layerwise").learner(
        tiny_model(0), MethodSpec("layerwise", lr=GRID_LR, options=options), LearnerContext(10, "classification", 0)
    )
    assert [g["lr"] for g in geometric.optimizer.param_groups] == pytest.approx([20 * GRID_LR, 20**0.5 * GRID_LR, GRID_LR])
