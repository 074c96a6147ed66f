"""One run: build one architecture, train it with one method, validate every epoch.

A run is described by a :class:`RunSpec` (plain, picklable data) and produces a
:class:`~alrao_cli.results.RunResult`, so any executor (this process, a pool of
workers, later Ray) can carry it. The loop knows nothing of the command line.

Checkpoints make a run resumable to the exact same numbers: the epoch's data order is a
function of (seed, epoch), and a checkpoint holds the learner's state, the random
generator's state, the history and the position inside the epoch.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from alrao_cli.data import DataSpec, LoadedData, batches, num_batches
from alrao_cli.errors import AlraoUserError
from alrao_cli.methods import Learner, MethodSpec, get_method
from alrao_cli.registry import build_model, count_parameters
from alrao_cli.results import EpochRecord, RunResult

DIVERGENCE_CHECK_EVERY = 25  # steps between host syncs that look for a non-finite loss
EVAL_BATCH_SIZE = 512
TRAIN_ACCURACY_EXAMPLES = 1024  # training accuracy is measured on this many examples, in eval mode


@dataclass(frozen=True, slots=True)
class Budget:
    """How long a run trains: a number of epochs, of steps, or of seconds (exactly one)."""

    epochs: int | None = None
    steps: int | None = None
    seconds: float | None = None


@dataclass(frozen=True, slots=True)
class RunSpec:
    """Everything one run needs, as plain data: the unit an executor schedules."""

    key: str  # unique inside its study: "arch|method|lr=...|seed=..."
    arch: str  # canonical architecture string (registry.build_model accepts it)
    label: str  # the architecture as the user wrote it, for tables
    method: MethodSpec
    data: DataSpec
    budget: Budget
    batch_size: int
    seed: int
    device: str = "cpu"
    workers: int = 0  # data-loader processes, for datasets that do not fit in memory
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    checkpoint_every: int | None = None  # steps; epochs always end with a checkpoint

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a run stands, for progress displays."""

    key: str
    epoch: int
    step: int
    fraction: float  # of the budget done, in [0, 1]
    train_loss: float | None
    val_loss: float | None


ProgressCallback = Callable[[Progress], None]


def train_run(
    spec: RunSpec,
    data: LoadedData,
    checkpoint: Path | None = None,
    on_progress: ProgressCallback | None = None,
) -> RunResult:
    """Train one architecture with one method; resume from ``checkpoint`` if it exists.

    Divergence ends the run with status "diverged" and the history so far. Errors
    (a model that does not build, a forward that fails) propagate to the caller, which
    records them as failures.
    """
    return _Run(spec, data, checkpoint, on_progress).execute()


def build_learner(spec: RunSpec, data: LoadedData, device: str | None = None) -> tuple[Learner, int]:
    """Build the run's model, check its output shape on two examples, wrap it for its method.

    Returns the learner and the model's trainable parameter count. Anything wrong with the
    architecture (it does not build, its forward fails or has the wrong shape, Alrao finds
    no output layer) surfaces here, before any training.
    """
    info = data.info
    device = torch.device(device or spec.device)
    torch.manual_seed(spec.seed)
    model = build_model(spec.arch, info.num_classes, info.input_shape, spec.model_kwargs)
    params = count_parameters(model)
    model.to(device)
    _check_output_shape(model, spec.label, data, device)
    learner = get_method(spec.method.name).learner(model, spec.method, info.num_classes, info.task, spec.seed)
    x, y = _probe_batch(data, device)
    learner.module.eval()
    with torch.no_grad():
        learner.evaluate(x, y)  # the wrapped model works too (Alrao: the head's output is the model's)
    learner.module.train()
    return learner, params


def _probe_batch(data: LoadedData, device: torch.device) -> tuple[Tensor, Tensor]:
    x, y = next(batches(data.val, 2, shuffle=False, seed=0, epoch=0))
    return x.to(device), y.to(device)


def _check_output_shape(model: nn.Module, label: str, data: LoadedData, device: torch.device) -> None:
    x, _ = _probe_batch(data, device)
    model.eval()
    with torch.no_grad():
        out = model(x)
    model.train()
    expected = (x.shape[0], data.info.num_classes)
    if not isinstance(out, Tensor) or tuple(out.shape) != expected:
        got = list(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise AlraoUserError(
            f"{label}: the model's output is {got}, expected [batch, {data.info.num_classes}] "
            f"for input {list(x.shape)}",
            hint="return one score per class (no softmax), shaped [batch, num_classes]",
        )


class _Run:
    def __init__(self, spec, data, checkpoint, on_progress) -> None:
        self.spec = spec
        self.data = data
        self.checkpoint = checkpoint
        self.on_progress = on_progress or (lambda progress: None)
        self.device = torch.device(spec.device)
        self.history: list[EpochRecord] = []
        self.epoch = 0  # epochs completed
        self.batch = 0  # batches done inside the current epoch
        self.step = 0
        self.epoch_loss_sum = 0.0
        self.elapsed_before = 0.0

    # -- the loop ------------------------------------------------------------------------
    def execute(self) -> RunResult:
        start = time.perf_counter()
        learner, params = build_learner(self.spec, self.data)
        self._restore(learner)
        status, reason = "ok", None
        try:
            self._train(learner, start)
        except _Diverged as diverged:
            status, reason = "diverged", str(diverged)
        if self.checkpoint is not None and self.checkpoint.exists():
            self.checkpoint.unlink()
        explanation = learner.explain() if status == "ok" else {}
        return RunResult(
            key=self.spec.key,
            arch=self.spec.label,
            method=self.spec.method.name,
            lr=self.spec.method.lr,
            seed=self.spec.seed,
            status=status,
            reason=reason,
            params=params,
            seconds=self.elapsed_before + time.perf_counter() - start,
            history=tuple(self.history),
            copy_lrs=tuple(explanation["copy_lrs"]) if "copy_lrs" in explanation else None,
            rate_summary=explanation.get("rate_summary"),
            spec=self.spec.to_dict(),
        )

    def _train(self, learner: Learner, start: float) -> None:
        spec = self.spec
        per_epoch = num_batches(self.data.train, spec.batch_size)
        while not self._budget_spent(start):
            learner.module.train()
            loss_sum = torch.tensor(self.epoch_loss_sum, dtype=torch.float64, device=self.device)
            epoch_batches = batches(
                self.data.train, spec.batch_size, shuffle=True, seed=spec.seed,
                epoch=self.epoch, skip=self.batch, workers=spec.workers,
            )
            for x, y in epoch_batches:
                loss = learner.train_step(x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True))
                loss_sum += loss
                self.batch += 1
                self.step += 1
                if self.step % DIVERGENCE_CHECK_EVERY == 0:
                    self._check_finite(float(loss_sum), "training loss")
                    self.on_progress(self._progress(start, per_epoch, float(loss_sum) / self.batch, None))
                if spec.checkpoint_every and self.step % spec.checkpoint_every == 0:
                    self.epoch_loss_sum = float(loss_sum)
                    self._save(learner, start)
                if self._out_of_steps_or_time(start):
                    break
            train_loss = float(loss_sum) / max(self.batch, 1)
            self._check_finite(train_loss, "training loss")
            val_loss, val_acc = self._evaluate(learner, self.data.val)
            _, train_acc = self._evaluate(learner, self.data.train, limit=TRAIN_ACCURACY_EXAMPLES)
            self._check_finite(val_loss, "validation loss")
            self.epoch += 1
            self.history.append(
                EpochRecord(
                    epoch=self.epoch, step=self.step, train_loss=train_loss, train_acc=train_acc,
                    val_loss=val_loss, val_acc=val_acc,
                    seconds=self.elapsed_before + time.perf_counter() - start,
                    posterior=learner.posterior(),
                )
            )
            self.batch, self.epoch_loss_sum = 0, 0.0
            self._save(learner, start)
            self.on_progress(self._progress(start, per_epoch, train_loss, val_loss))

    def _out_of_steps_or_time(self, start: float) -> bool:
        """A step or time budget may end a run inside an epoch."""
        budget = self.spec.budget
        if budget.steps is not None:
            return self.step >= budget.steps
        if budget.seconds is not None:
            return self.elapsed_before + time.perf_counter() - start >= budget.seconds
        return False

    def _budget_spent(self, start: float) -> bool:
        epochs = self.spec.budget.epochs
        return self._out_of_steps_or_time(start) or (epochs is not None and self.epoch >= epochs)

    def _progress(self, start: float, per_epoch: int, train_loss, val_loss) -> Progress:
        budget = self.spec.budget
        if budget.steps is not None:
            fraction = self.step / budget.steps
        elif budget.seconds is not None:
            fraction = (self.elapsed_before + time.perf_counter() - start) / budget.seconds
        else:
            fraction = (self.epoch + self.batch / max(per_epoch, 1)) / budget.epochs
        return Progress(self.spec.key, self.epoch, self.step, min(fraction, 1.0), train_loss, val_loss)

    @torch.no_grad()
    def _evaluate(self, learner: Learner, dataset, limit: int | None = None) -> tuple[float, float | None]:
        """Mean loss and accuracy on ``dataset`` (its first ``limit`` examples), in eval mode."""
        learner.module.eval()
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        count = 0
        for x, y in batches(dataset, EVAL_BATCH_SIZE, shuffle=False, seed=0, epoch=0):
            if limit is not None and count >= limit:
                break
            x, y = x.to(self.device), y.to(self.device)
            losses, labels = learner.evaluate(x, y)
            loss_sum += losses.sum()
            if labels is not None:
                correct += (labels == y).sum()
            count += y.shape[0]
        accuracy = None if self.data.info.task == "regression" else int(correct) / count
        return float(loss_sum) / count, accuracy

    def _check_finite(self, value: float, what: str) -> None:
        if not math.isfinite(value):
            raise _Diverged(f"{what} became {value} at step {self.step} (epoch {self.epoch + 1})")

    # -- checkpoints ---------------------------------------------------------------------
    def _save(self, learner: Learner, start: float) -> None:
        if self.checkpoint is None:
            return
        state = {
            "key": self.spec.key,
            "learner": learner.state_dict(),
            "epoch": self.epoch,
            "batch": self.batch,
            "step": self.step,
            "epoch_loss_sum": self.epoch_loss_sum,
            "elapsed": self.elapsed_before + time.perf_counter() - start,
            "history": [_record_to_plain(r) for r in self.history],
            "rng": torch.get_rng_state(),
        }
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.checkpoint.with_name(self.checkpoint.name + ".tmp")
        with open(temporary, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.checkpoint)

    def _restore(self, learner: Learner) -> None:
        if self.checkpoint is None or not self.checkpoint.exists():
            return
        state = torch.load(self.checkpoint, map_location=self.device, weights_only=True)
        if state.get("key") != self.spec.key:
            return  # another run's file: start afresh rather than mix two runs
        learner.load_state_dict(state["learner"])
        self.epoch, self.batch, self.step = state["epoch"], state["batch"], state["step"]
        self.epoch_loss_sum = state["epoch_loss_sum"]
        self.elapsed_before = state["elapsed"]
        self.history = [EpochRecord(**_plain_to_record(r)) for r in state["history"]]
        torch.set_rng_state(state["rng"].cpu())
        if "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), self.device)


class _Diverged(Exception):
    pass


def _record_to_plain(record: EpochRecord) -> dict[str, Any]:
    plain = asdict(record)
    plain["posterior"] = list(record.posterior) if record.posterior is not None else None
    return plain


def _plain_to_record(plain: dict[str, Any]) -> dict[str, Any]:
    posterior = plain.get("posterior")
    return {**plain, "posterior": tuple(posterior) if posterior is not None else None}
