"""The methods that wrap optional packages (prodigyopt, dadaptation, dog-optimizer, schedulefree):
the one-line error when one is missing, their own rules (DoG's averaged model, Schedule-Free's
modes and BatchNorm statistics), and runs through the real training loop."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from alrao_cli.data.load import cached_data
from alrao_cli.data.spec import DataSpec
from alrao_cli.errors import AlraoUserError
from alrao_cli.study.methods import get_method
from alrao_cli.study.methods.base import LearnerContext, TorchOptimizerLearner
from alrao_cli.study.spec import Budget, MethodSpec, RunSpec
from alrao_cli.study.train import train_run

PACKAGES = {  # method: (import name, pip name)
    "prodigy": ("prodigyopt", "prodigyopt"),
    "dadapt-sgd": ("dadaptation", "dadaptation"),
    "dadapt-adam": ("dadaptation", "dadaptation"),
    "dog": ("dog", "dog-optimizer"),
    "ldog": ("dog", "dog-optimizer"),
    "sf-sgd": ("schedulefree", "schedulefree"),
    "sf-adamw": ("schedulefree", "schedulefree"),
}
DATA = DataSpec(subset=256)  # MNIST-1D: 256 training examples (8 batches of 32), 64 validation


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def model(batch_norm: bool = True, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    norm = [nn.BatchNorm1d(16)] if batch_norm else []
    return nn.Sequential(nn.Flatten(), nn.Linear(40, 16), *norm, nn.ReLU(), nn.Linear(16, 10))


def batches(count: int, seed: int = 3) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randn(8, 40, generator=generator), torch.randint(0, 10, (8,), generator=generator)) for _ in range(count)]


def learner_of(name: str, net: nn.Module, **options):
    method = get_method(name)
    spec = MethodSpec(name, options=method.options_type(**options) if options else None)
    return method.learner(net, spec, LearnerContext(10, "classification", 0))


# -- a missing package ------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(PACKAGES))
def test_a_missing_package_is_named_in_one_line_with_the_extra_to_install(name, monkeypatch):
    package, distribution = PACKAGES[name]
    monkeypatch.setitem(sys.modules, package, None)  # import fails as if it were not installed
    get_method(name)  # the registry does not need it
    with pytest.raises(AlraoUserError) as error:
        learner_of(name, model())
    assert error.value.message == f"the method {name} needs the package {distribution}"
    assert error.value.hint == 'pip install "alrao-cli[methods]"'
    assert "\n" not in str(error.value)


# -- DoG: the averaged model is the one evaluated ---------------------------------------------
@pytest.mark.parametrize("name", ["dog", "ldog"])
def test_dog_trains_the_model_and_evaluates_its_polynomial_average(name):
    learner = learner_of(name, model())
    data = batches(6)
    for x, y in data:
        learner.train_step(x, y)
    averaged = learner.averager.averaged_model
    assert learner.averager.t == 7  # stepped after each of the 6 updates
    learner.module.eval()
    with torch.no_grad():
        losses, _ = learner.evaluate(*data[0])
        expected = nn.functional.cross_entropy(averaged.eval()(data[0][0]), data[0][1], reduction="none")
        trained = nn.functional.cross_entropy(learner.module(data[0][0]), data[0][1], reduction="none")
    assert torch.equal(losses, expected) and not torch.equal(losses, trained)
    assert not averaged.training  # in the mode the loop put the model in


def test_dogs_first_distance_follows_the_authors_advice_on_batch_normalization():
    assert learner_of("dog", model(batch_norm=True)).optimizer.param_groups[0]["reps_rel"] == 1e-4
    assert learner_of("dog", model(batch_norm=False)).optimizer.param_groups[0]["reps_rel"] == 1e-6
    assert learner_of("ldog", model(), reps_rel=1e-3).optimizer.param_groups[0]["reps_rel"] == 1e-3


# -- Schedule-Free: modes and BatchNorm statistics --------------------------------------------
@pytest.mark.parametrize("name", ["sf-sgd", "sf-adamw"])
def test_schedule_free_trains_at_y_and_evaluates_at_x(name):
    learner = learner_of(name, model())
    data = batches(5)
    for x, y in data:
        learner.train_step(x, y)
    optimizer = learner.optimizer
    assert optimizer.param_groups[0]["train_mode"]
    at_y = [p.detach().clone() for p in learner.module.parameters()]
    learner.module.eval()
    with torch.no_grad():
        learner.evaluate(*data[0])
    assert not optimizer.param_groups[0]["train_mode"]  # switched with the model
    beta = optimizer.param_groups[0].get("momentum") or optimizer.param_groups[0]["betas"][0]
    for p, y_value in zip(learner.module.parameters(), at_y):  # x = (y - (1 - beta) z) / beta
        z = optimizer.state[p]["z"]
        assert torch.allclose(p, (y_value - (1 - beta) * z) / beta, atol=1e-6)
    learner.module.train()
    learner.train_step(*data[1])
    assert optimizer.param_groups[0]["train_mode"]


def test_schedule_free_recomputes_batch_norm_statistics_at_x():
    learner = learner_of("sf-sgd", model(), bn_batches=3)
    for x, y in batches(5):
        learner.train_step(x, y)
    norm = learner.module[2]
    statistics = batches(4, seed=11)
    learner.module.eval()
    with torch.no_grad():
        learner.prepare_evaluation(iter(statistics))
        assert not learner.optimizer.param_groups[0]["train_mode"]  # at x
        hidden = [learner.module[1](x) for x, _ in statistics[:3]]  # BatchNorm's inputs at x; the 4th is not read
    assert not learner.module.training  # the mode the loop set is back
    assert torch.allclose(norm.running_mean, torch.stack([h.mean(0) for h in hidden]).mean(0), atol=1e-6)
    assert torch.allclose(norm.running_var, torch.stack([h.var(0) for h in hidden]).mean(0), atol=1e-6)
    assert norm.momentum == 0.1
    before = norm.running_mean.clone()
    learner.prepare_evaluation(iter([]))  # no batch: the statistics stay
    assert torch.equal(norm.running_mean, before)


def test_without_batch_norm_schedule_free_reads_no_batch():
    def untouchable():
        raise AssertionError("a batch was read")
        yield

    learner = learner_of("sf-adamw", model(batch_norm=False))
    learner.train_step(*batches(1)[0])
    learner.prepare_evaluation(untouchable())
    assert not learner.optimizer.param_groups[0]["train_mode"]


# -- through the training loop ----------------------------------------------------------------
def run_spec(name: str, epochs: int) -> RunSpec:
    return RunSpec(
        key=f"mlp|{name}|seed=0", arch="mlp", label="mlp", method=MethodSpec(name), data=DATA,
        budget=Budget(epochs=epochs), batch_size=32, seed=0, device="cpu",
    )


def numbers(result) -> dict:
    plain = result.to_dict()
    plain.pop("seconds")
    for record in plain["history"]:
        record.pop("seconds")
    return plain


class StopAfterFirstEpoch:
    """A progress callback that interrupts the run once its first epoch is validated (and saved)."""

    def __call__(self, progress) -> None:
        if progress.val_loss is not None and progress.epoch == 1:
            raise KeyboardInterrupt


@pytest.mark.parametrize("name", list(PACKAGES))
def test_each_wrapped_method_trains_the_zoo_mlp_and_resumes_exactly_through_the_loop(name, tmp_path, monkeypatch):
    data = cached_data(DATA)
    one_epoch = train_run(run_spec(name, 1), data)
    assert one_epoch.status == "ok" and one_epoch.method_label == get_method(name).label
    assert len(one_epoch.history) == 1 and one_epoch.history[0].val_loss < 10

    reference = train_run(run_spec(name, 2), data)
    checkpoint = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt):
        train_run(run_spec(name, 2), data, checkpoint, on_progress=StopAfterFirstEpoch())
    assert checkpoint.exists()
    steps = []
    train_step = TorchOptimizerLearner.train_step  # every one of these learners trains through it

    def counted(learner, x, y):
        steps.append(1)
        return train_step(learner, x, y)

    monkeypatch.setattr(TorchOptimizerLearner, "train_step", counted)
    torch.manual_seed(999)  # what a previous run leaves behind
    resumed = train_run(run_spec(name, 2), data, checkpoint)
    assert len(steps) == 8  # the second epoch only
    assert numbers(resumed) == numbers(reference)
