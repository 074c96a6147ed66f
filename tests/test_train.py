"""One run, in this process: seeding, checkpoints, divergence, failures and budgets."""

from __future__ import annotations

import logging
import math
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from alrao_cli.data.load import cached_data
from alrao_cli.data.spec import DataSpec
from alrao_cli.errors import AlraoDivergedError, AlraoUserError, is_out_of_memory
from alrao_cli.study import train

from support import stop_at
from alrao_cli.study.attempt import execute_run, failure_reason
from alrao_cli.study.checkpoint import checkpoint_path
from alrao_cli.study.spec import AlraoOptions, Budget, MethodSpec, RunSpec
from alrao_cli.study.train import (
    accumulator_dtype,
    blow_up_level,
    build_learner,
    train_run,
)

DATA = DataSpec(subset=96)  # MNIST-1D: 96 training examples, 24 validation, [40] inputs, 10 classes
ALRAO = MethodSpec("alrao", options=AlraoOptions(lr_min=1e-3, lr_max=1.0, copies=3))

MODELS = """
import random
import numpy as np
import torch
from torch import nn


class Noisy(nn.Module):
    '''Draws from Python's random and NumPy in its forward, and has dropout (torch's generator).'''

    def __init__(self, num_classes, input_shape):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(input_shape[0], 16), nn.ReLU(), nn.Dropout(0.3))
        self.head = nn.Linear(16, num_classes)

    def forward(self, x):
        noise = 1 + 0.1 * random.random() + 0.1 * float(np.random.rand())
        return self.head(self.body(x) * noise)


class Grows(nn.Module):
    '''Trains normally for `calm` forwards, then its features triple at every training forward.'''

    def __init__(self, num_classes, input_shape, calm=0):
        super().__init__()
        self.body = nn.Linear(input_shape[0], 16)
        self.head = nn.Linear(16, num_classes)
        self.calm = calm
        self.calls = 0
        self.scale = 1.0

    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls > self.calm:
                self.scale *= 3.0
        return self.head(torch.relu(self.body(x)) * self.scale)


class Crashes(nn.Module):
    '''Fails at its 16th training forward (inside the second epoch of 12 steps).'''

    def __init__(self, num_classes, input_shape, message="boom"):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(input_shape[0], 16), nn.ReLU(), nn.Linear(16, num_classes))
        self.message = message
        self.calls = 0

    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls == 16:
                raise RuntimeError(self.message)
        return self.net(x)


class WrongInput(nn.Module):
    def __init__(self, num_classes, input_shape):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(30, 16), nn.ReLU(), nn.Linear(16, num_classes))

    def forward(self, x):
        return self.net(x)


def lazy(num_classes, input_shape):
    return nn.Sequential(nn.LazyLinear(16), nn.ReLU(), nn.Linear(16, num_classes))
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("train-models") / "models.py"
    path.write_text(MODELS)
    return path


def spec_of(models: Path, name: str, method: MethodSpec = ALRAO, **changes) -> RunSpec:
    spec = RunSpec(
        key=f"{name}|{method.name}|seed=0", arch=f"{models}:{name}", label=name, method=method, data=DATA,
        budget=Budget(epochs=2), batch_size=8, seed=0, device="cpu",
    )
    return replace(spec, **changes)


def numbers(result) -> dict:
    """Everything a run measured but its timings."""
    plain = result.to_dict()
    plain.pop("seconds")
    for record in plain["history"]:
        record.pop("seconds")
    return plain


def scramble_generators() -> None:
    torch.manual_seed(12345)
    random.seed(12345)
    np.random.seed(12345)


# -- seeding and checkpoints ------------------------------------------------------------------
def test_random_and_numpy_are_seeded_per_run(models):
    data = cached_data(DATA)
    first = train_run(spec_of(models, "Noisy"), data)
    scramble_generators()  # what the previous run of a screen leaves behind
    second = train_run(spec_of(models, "Noisy"), data)
    assert first.status == "ok" and numbers(first) == numbers(second)


def test_a_run_resumed_mid_epoch_equals_an_uninterrupted_one(models, tmp_path, monkeypatch):
    data = cached_data(DATA)
    spec = spec_of(models, "Noisy", checkpoint_every=5)
    reference = train_run(spec, data)

    checkpoint = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt):
        train_run(spec, data, checkpoint, stop_at(step=15))  # 12 steps an epoch: inside the second
    saved = torch.load(checkpoint, weights_only=True)  # the safe loader reads every generator state
    assert (saved["step"], saved["epoch"], saved["batch"]) == (15, 1, 3)
    scramble_generators()
    resumed = train_run(spec, data, checkpoint)
    assert numbers(resumed) == numbers(reference)
    # The first epoch was not trained again: its timing is the checkpoint's.
    assert resumed.history[0].seconds == saved["history"][0]["seconds"]
    assert checkpoint.exists()  # the caller deletes it, once the result is saved


def test_a_checkpoint_of_another_configuration_is_ignored(models, tmp_path, monkeypatch):
    data = cached_data(DATA)
    checkpoint = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt):
        train_run(spec_of(models, "Noisy"), data, checkpoint, stop_at(step=12))
    other = spec_of(models, "Noisy", method=replace(ALRAO, options=replace(ALRAO.options, lr_max=0.5)))
    assert other.key == spec_of(models, "Noisy").key
    assert numbers(train_run(other, data, checkpoint)) == numbers(train_run(other, data))


def test_checkpoints_are_also_written_by_time_inside_an_epoch(models, tmp_path):
    saved_at: list[int] = []

    def record(progress) -> None:
        if progress.checkpointed:
            saved_at.append(progress.step)

    data = cached_data(DATA)
    train_run(spec_of(models, "Noisy", checkpoint_seconds=None), data, tmp_path / "a.pt", record)
    assert saved_at == [12, 24]  # epoch ends only
    saved_at.clear()
    train_run(spec_of(models, "Noisy", checkpoint_seconds=0.0), data, tmp_path / "b.pt", record)
    assert saved_at[:3] == [1, 2, 3]  # every step, when every step is "10 minutes later"
    assert RunSpec.__dataclass_fields__["checkpoint_seconds"].default == 600.0


def test_an_unreadable_checkpoint_costs_a_restart_with_a_notice(models, tmp_path, caplog):
    data = cached_data(DATA)
    spec = spec_of(models, "Noisy")
    checkpoint = tmp_path / "run.pt"
    checkpoint.write_bytes(b"")  # what a full disk may leave behind
    with caplog.at_level(logging.WARNING, logger="alrao_cli.study.train"):
        resumed = train_run(spec, data, checkpoint)
    assert numbers(resumed) == numbers(train_run(spec, data))
    (notice,) = [record.getMessage() for record in caplog.records]
    assert notice.startswith(f"{spec.key}: ignoring the checkpoint {checkpoint}: it cannot be read")
    assert notice.endswith("; starting afresh")


def test_a_run_with_a_very_long_key_checkpoints_and_logs_its_failure(models, tmp_path):
    long = spec_of(models, "Crashes", checkpoint_every=5)
    long = replace(long, key=f"{'x' * 300}|{long.key}", label="x" * 300)
    result = execute_run(long, tmp_path)  # file names longer than 255 bytes used to crash here
    assert result.status == "failed" and len(result.history) == 1
    log = Path(result.reason.split("(traceback: ")[1].rstrip(")"))
    assert log.is_file() and len(log.name) < 255
    assert checkpoint_path(tmp_path, long.key).is_file()


# -- divergence -------------------------------------------------------------------------------
def test_divergence_is_the_one_diverged_error_with_the_loops_words():
    assert str(AlraoDivergedError(3, math.nan)) == "loss became nan at step 3"
    worded = AlraoDivergedError(7, math.inf, "validation loss became inf at step 7 (epoch 2)")
    assert (str(worded), worded.step, worded.loss) == ("validation loss became inf at step 7 (epoch 2)", 7, math.inf)
    assert not hasattr(train, "_Diverged")


def test_the_blow_up_level_is_100_times_the_larger_of_the_first_loss_and_ln_k():
    assert blow_up_level(None, 10, "classification") == math.inf
    assert blow_up_level(2.0, 10, "classification") == pytest.approx(100 * math.log(10))
    assert blow_up_level(50.0, 10, "classification") == pytest.approx(5000.0)
    assert blow_up_level(0.5, 1, "regression") == pytest.approx(50.0)


def test_a_finite_blow_up_is_divergence(models):
    result = train_run(spec_of(models, "Grows", method=MethodSpec("sgd", lr=1e-6)), cached_data(DATA))
    assert result.status == "diverged"
    assert "over 100x its starting level" in result.reason
    assert "nan" not in result.reason and "inf" not in result.reason  # the loss was still finite


def test_a_diverged_alrao_run_keeps_its_history_and_selected_rate(models):
    spec = spec_of(models, "Grows", model_kwargs={"calm": 12}, budget=Budget(epochs=3))
    result = train_run(spec, cached_data(DATA))
    assert result.status == "diverged" and len(result.history) == 1
    assert result.copy_lrs is not None and result.lr_selected in result.copy_lrs


# -- failures ---------------------------------------------------------------------------------
def test_a_forward_that_fails_on_the_data_names_the_model_and_the_input(models):
    with pytest.raises(AlraoUserError) as caught:
        build_learner(spec_of(models, "WrongInput"), cached_data(DATA))
    assert caught.value.message.startswith("WrongInput: forward failed on input [2, 40]: RuntimeError: mat1")
    assert "alrao check WrongInput --debug" in caught.value.hint
    assert isinstance(caught.value.__cause__, RuntimeError)  # --debug shows the model's frame


def test_lazy_modules_get_their_shape_before_parameters_are_counted(models):
    result = train_run(spec_of(models, "lazy", budget=Budget(epochs=1)), cached_data(DATA))
    assert result.status == "ok" and result.params == 40 * 16 + 16 + 16 * 10 + 10


def test_a_run_failing_mid_training_keeps_its_history(models, tmp_path):
    result = execute_run(spec_of(models, "Crashes"), tmp_path)
    assert result.status == "failed" and result.reason.startswith("RuntimeError: boom (traceback: /")
    assert len(result.history) == 1 and result.params is not None and result.seconds > 0
    log = Path(result.reason.split("(traceback: ")[1].rstrip(")"))
    assert log.is_absolute() and "raise RuntimeError(self.message)" in log.read_text()  # the model's frame


@pytest.mark.parametrize(
    "message",
    [
        "DefaultCPUAllocator: can't allocate memory: you tried to allocate 81920000000 bytes.",
        "CUDA out of memory. Tried to allocate 20.00 GiB",
        "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
    ],
)
def test_out_of_memory_is_recognised_from_torch_messages(models, tmp_path, message):
    assert is_out_of_memory(RuntimeError(message))
    result = execute_run(spec_of(models, "Crashes", model_kwargs={"message": message}), tmp_path)
    assert result.status == "failed" and result.reason.startswith("out of memory on cpu")
    assert len(result.history) == 1


def test_other_errors_are_not_out_of_memory(tmp_path):
    error = RuntimeError("mat1 and mat2 shapes cannot be multiplied")
    assert not is_out_of_memory(error) and is_out_of_memory(MemoryError())
    spec = spec_of(tmp_path / "m.py", "Any")
    assert failure_reason(error, spec, tmp_path).startswith("RuntimeError: mat1")


# -- budgets and devices ----------------------------------------------------------------------
def test_a_time_budget_shorter_than_set_up_still_trains_a_step_and_validates(models):
    result = train_run(spec_of(models, "Noisy", budget=Budget(seconds=1e-9)), cached_data(DATA))
    assert result.status == "ok" and len(result.history) == 1
    assert result.history[0].step >= 1 and math.isfinite(result.history[0].val_loss)


def test_losses_are_summed_in_a_dtype_the_device_has():
    assert accumulator_dtype(torch.device("mps")) == torch.float32
    assert accumulator_dtype(torch.device("cpu")) == torch.float64
    assert accumulator_dtype(torch.device("cuda", 1)) == torch.float64


def test_progress_is_reported_after_the_first_step(models):
    seen = []
    train_run(spec_of(models, "Noisy", budget=Budget(steps=3)), cached_data(DATA), on_progress=seen.append)
    assert seen[0].step == 1 and seen[0].val_loss is None and seen[0].train_loss is not None


def test_an_alrao_epoch_keeps_each_copys_validation_loss_and_the_mixture_is_never_worse(models):
    """By convexity of -log, the mixture's loss is at most the posterior-weighted mean of the copies'."""
    data = cached_data(DATA)
    alrao = train_run(spec_of(models, "lazy"), data)
    for record in alrao.history:
        assert len(record.copy_val_losses) == 3 and all(math.isfinite(loss) for loss in record.copy_val_losses)
        weighted = sum(a * loss for a, loss in zip(record.posterior, record.copy_val_losses))
        assert record.val_loss <= weighted + 1e-6
    one_copy = replace(ALRAO, options=AlraoOptions(lr_min=1e-3, lr_max=1.0, copies=1))
    [single] = train_run(spec_of(models, "lazy", method=one_copy), data).history[-1:]
    assert single.copy_val_losses == pytest.approx((single.val_loss,), rel=1e-5)  # one copy is the mixture
    sgd = train_run(spec_of(models, "lazy", method=MethodSpec("sgd", lr=0.1)), data)
    assert all(record.copy_val_losses is None for record in sgd.history)
