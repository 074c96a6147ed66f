"""One run: build one architecture, train it with one method, validate every epoch.

A run is described by a :class:`RunSpec` (plain, picklable data) and produces a
:class:`~alrao_cli.results.records.RunResult`, so any executor (this process, a pool of
workers, later Ray) can carry it. The loop knows nothing of the command line.

Checkpoints make a run resumable to the exact same numbers: the epoch's data order is a
function of (seed, epoch), and a checkpoint (:mod:`alrao_cli.study.checkpoint`, which
says what it holds) keeps the learner, every random generator a model may draw from,
the history and the position inside the epoch. It is written at the end of every epoch,
every ``checkpoint_every`` steps if asked, and whenever ``checkpoint_seconds`` have
passed since the last one, so that a long epoch never risks more than that much work.
"""

from __future__ import annotations

import logging
import math
import random
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from alrao_cli.alrao.head import probe_forward
from alrao_cli.data.batches import batches, num_batches
from alrao_cli.data.datasets import LoadedData
from alrao_cli.data.spec import DataInfo
from alrao_cli.errors import AlraoDivergedError, AlraoUserError, is_out_of_memory
from alrao_cli.results.records import EpochRecord, RunResult
from alrao_cli.sources.build import build_model, count_parameters
from alrao_cli.study.checkpoint import (
    Checkpoint,
    RunPosition,
    UnusableCheckpoint,
)
from alrao_cli.study.methods import described, get_method
from alrao_cli.study.methods.base import Learner, LearnerContext, RunData
from alrao_cli.study.torch_startup import import_what_the_first_step_imports
from alrao_cli.study.spec import Budget, MethodSpec, Progress, ProgressCallback, RunSpec
from alrao_cli.util.reasons import one_line_reason

logger = logging.getLogger(__name__)

DIVERGENCE_CHECK_EVERY = 25  # steps between host syncs that look at the training loss
BLOW_UP_FACTOR = 100.0  # a loss this many times its reference level has diverged (see blow_up_level)
EVAL_BATCH_SIZE = 512
TRAIN_ACCURACY_EXAMPLES = 1024  # training accuracy is measured on this many examples, in eval mode


@dataclass(frozen=True, slots=True)
class PartialRun:
    """What a run had done when training raised: kept in its failed result."""

    params: int
    seconds: float
    history: tuple[EpochRecord, ...]


@dataclass(frozen=True, slots=True)
class Evaluation:
    """A model's figures on one dataset: mean loss, accuracy (None for regression) and,
    where the method has output copies, each copy's own mean loss."""

    loss: float
    accuracy: float | None
    copy_losses: tuple[float, ...] | None = None


class TrainingFailed(Exception):
    """Training raised partway through; the original error is ``__cause__``."""

    def __init__(self, partial: PartialRun) -> None:
        super().__init__("training failed")
        self.partial = partial


def train_run(
    spec: RunSpec,
    data: LoadedData,
    checkpoint: Path | None = None,
    on_progress: ProgressCallback | None = None,
    run_dir: Path | None = None,
) -> RunResult:
    """Train one architecture with one method; resume from ``checkpoint`` if it exists.

    Divergence ends the run with status "diverged" and the history so far. Errors while
    setting up (a model that does not build, a forward that fails) propagate as they are;
    an error while training propagates as :class:`TrainingFailed` carrying the history so
    far. The caller records both as failures.

    The checkpoint is left in place: the caller deletes it (:func:`discard_checkpoint`)
    once it has saved the result, so that a crash in between loses nothing. ``run_dir`` is
    where a method may leave files for the study's other runs (MLR-SNet's trained net).
    """
    return _Run(spec, data, checkpoint, on_progress, run_dir).execute()


def seed_everything(seed: int) -> None:
    """Seed every generator a model might draw from: torch (CPU and CUDA), ``random``, NumPy."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


def accumulator_dtype(device: torch.device) -> torch.dtype:
    """The dtype for summing losses on ``device``: float64, but MPS has no float64."""
    return torch.float32 if device.type == "mps" else torch.float64


def blow_up_level(first_loss: float | None, num_classes: int, task: str) -> float:
    """The loss above which a run has diverged although its loss is still finite.

    ``BLOW_UP_FACTOR`` times the larger of the first logged training loss and, for
    classification, ``ln K`` (the loss of a uniform guess over K classes). A loss a
    hundred times a uniform guess's gives the true class a probability below
    ``K**-100`` on average: the weights have blown up, and SGD does not come back from
    there. Measuring against the starting loss too spares a model that starts badly.
    Before any loss is logged there is no level (infinity).
    """
    if first_loss is None:
        return math.inf
    floor = math.log(num_classes) if task != "regression" else 0.0
    return BLOW_UP_FACTOR * max(abs(first_loss), floor)


TRAINED_NOTHING = (
    "trained nothing: no parameter changed in the whole run (every parameter frozen, or rates "
    "too small to move the weights, e.g. a subnormal --lr-min and --lr-max)"
)


def parameter_checksum(module: nn.Module) -> float:
    """A float64 digest of the trainable parameters' values, cheap enough to take twice a run.

    Equal before and after a run only if no parameter moved (a coincidence of both sums
    over every parameter is not a practical concern).
    """
    with torch.no_grad():
        total = torch.zeros((), dtype=torch.float64)
        for parameter in module.parameters():
            if parameter.requires_grad:
                values = parameter.detach().double().cpu()
                total += values.abs().sum() + values.square().sum()
    return float(total)


def build_learner(
    spec: RunSpec, data: LoadedData, device: str | None = None, run_dir: Path | None = None
) -> tuple[Learner, int]:
    """Build the run's model, check its output shape on two examples, wrap it for its method.

    Returns the learner and the model's trainable parameter count (counted after the
    probe forward, which gives lazy modules such as ``nn.LazyLinear`` their shapes).
    Anything wrong with the architecture (it does not build, its forward fails or has
    the wrong shape, every parameter is frozen, Alrao finds no output layer) surfaces here,
    before any training.
    """
    info = data.info
    device = torch.device(device or spec.device)
    seed_everything(spec.seed)
    model = build_model(spec.arch, info.num_classes, info.input_shape, spec.model_kwargs)
    model.to(device)
    x, y = _probe_batch(data, device)
    _check_output_shape(model, spec.label, x, info.num_classes)
    params = count_parameters(model)
    if params == 0:  # Alrao would train its own output copies alone and rank the model as if it learned
        raise AlraoUserError(
            f"{spec.label}: every parameter is frozen (requires_grad=False): there is nothing to train",
            hint="leave requires_grad on for the parameters the screen should train",
        )
    per_epoch = num_batches(data.train, spec.batch_size)
    run = RunData(spec.label, data.train, spec.batch_size, per_epoch, run_dir)
    learner = wrap_for_training(model, spec.method, info, spec.seed, x, y, total_steps(spec.budget, per_epoch), run)
    return learner, params


def total_steps(budget: Budget, per_epoch: int) -> int | None:
    """How many training steps a run takes in all (None when its budget is in seconds)."""
    if budget.steps is not None:
        return budget.steps
    if budget.epochs is not None:
        return budget.epochs * per_epoch
    return None


def wrap_for_training(
    model: nn.Module, method: MethodSpec, info: DataInfo, seed: int, x: Tensor, y: Tensor,
    total: int | None = None, run: RunData | None = None,
) -> Learner:
    """Wrap a built model (on its device) into its method's learner, and evaluate the learner on ``(x, y)``.

    The one way a model becomes trainable: a screen's runs (:func:`build_learner`) and
    ``alrao check`` (its wrap item) both come here. ``x`` also lets Alrao find the
    output layer; the evaluation shows that the wrapped model works too (Alrao: that the
    head's output is the model's).
    """
    context = LearnerContext(info.num_classes, info.task, seed, example_input=x, total_steps=total, run=run)
    learner = get_method(method.name).learner(model, method, context)
    learner.module.eval()
    with torch.no_grad():
        learner.evaluate(x, y)
    learner.module.train()
    return learner


def _probe_batch(data: LoadedData, device: torch.device) -> tuple[Tensor, Tensor]:
    x, y = next(batches(data.val, 2, shuffle=False, seed=0, epoch=0))
    return x.to(device), y.to(device)


def _check_output_shape(model: nn.Module, label: str, x: Tensor, num_classes: int) -> None:
    """The bare model's forward on the probe batch works and gives ``[batch, num_classes]``."""
    try:
        out = probe_forward(model, x)
    except Exception as error:
        if is_out_of_memory(error):
            raise  # a resource problem, reported as such, not a bug in the model
        raise AlraoUserError(
            f"{label}: forward failed on input {list(x.shape)}: {one_line_reason(error)}",
            hint=f"`alrao check {shlex.quote(label)} --debug` shows the traceback",
        ) from error
    expected = (x.shape[0], num_classes)
    if not isinstance(out, Tensor) or tuple(out.shape) != expected:
        got = list(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise AlraoUserError(
            f"{label}: the model's output is {got}, expected [batch, {num_classes}] "
            f"for input {list(x.shape)}",
            hint="return one score per class (no softmax), shaped [batch, num_classes]",
        )


class _Run:
    def __init__(self, spec, data, checkpoint, on_progress, run_dir) -> None:
        self.spec = spec
        self.run_dir = run_dir
        self.data = data
        self.checkpoint = Checkpoint.of_run(checkpoint, spec) if checkpoint is not None else None
        self.on_progress = on_progress or (lambda progress: None)
        self.device = torch.device(spec.device)
        self.history: list[EpochRecord] = []
        self.epoch = 0  # epochs completed
        self.batch = 0  # batches done inside the current epoch
        self.step = 0
        self.epoch_loss_sum = 0.0
        self.elapsed_before = 0.0  # seconds trained before the checkpoint this run resumed from
        self.first_loss: float | None = None  # the first logged training loss: the divergence reference
        self.start_checksum: float | None = None  # the trainable parameters before the first step
        self.last_checkpoint = time.perf_counter()

    # -- the loop ------------------------------------------------------------------------
    def execute(self) -> RunResult:
        learner, params = build_learner(self.spec, self.data, run_dir=self.run_dir)
        self._restore(learner)
        if self.step == 0:
            self.start_checksum = parameter_checksum(learner.module)
        import_what_the_first_step_imports(type(getattr(learner, "optimizer", None)))
        start = time.perf_counter()  # the budget and the timings count training, not set-up
        self.last_checkpoint = start
        status, reason = "ok", None
        try:
            learner.before_training(lambda: self._save(learner, start))
            self._train(learner, start)
        except AlraoDivergedError as diverged:
            status, reason = "diverged", str(diverged)
        except Exception as error:
            raise TrainingFailed(PartialRun(params, self._elapsed(start), tuple(self.history))) from error
        if status == "ok" and self.start_checksum is not None and parameter_checksum(learner.module) == self.start_checksum:
            status, reason = "failed", TRAINED_NOTHING
        if status == "ok":
            learner.finish()
        explanation = learner.explain()
        return RunResult(
            key=self.spec.key,
            arch=self.spec.label,
            method=self.spec.method.name,
            lr=self.spec.method.lr,
            seed=self.spec.seed,
            status=status,
            reason=reason,
            params=params,
            seconds=self._elapsed(start),
            history=tuple(self.history),
            copy_lrs=tuple(explanation["copy_lrs"]) if "copy_lrs" in explanation else None,
            rate_summary=explanation.get("rate_summary"),
            explanation={k: v for k, v in explanation.items() if k not in ("copy_lrs", "rate_summary")} or None,
            spec=self.spec.to_dict(),
            **described(self.spec.method),
        )

    def _train(self, learner: Learner, start: float) -> None:
        """Train until the budget is spent, but at least one step and one validation."""
        spec = self.spec
        per_epoch = num_batches(self.data.train, spec.batch_size)
        while not self.history or not self._budget_spent(start):
            learner.module.train()
            loss_sum = torch.tensor(self.epoch_loss_sum, dtype=accumulator_dtype(self.device), device=self.device)
            epoch_batches = batches(
                self.data.train, spec.batch_size, shuffle=True, seed=spec.seed,
                epoch=self.epoch, skip=self.batch, workers=spec.loader_workers,
            )
            for x, y in epoch_batches:
                loss = learner.train_step(x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True))
                loss_sum += loss
                self.batch += 1
                self.step += 1
                if self.step == 1 or self.step % DIVERGENCE_CHECK_EVERY == 0:
                    running = float(loss_sum) / self.batch
                    if self.first_loss is None:
                        self.first_loss = running
                    self._check_loss(running, "training loss")
                    self.on_progress(self._progress(start, per_epoch, running, None))
                if self._checkpoint_due():
                    self.epoch_loss_sum = float(loss_sum)
                    self._save(learner, start)
                    self.on_progress(self._progress(start, per_epoch, None, None, checkpointed=True))
                if self._out_of_steps_or_time(start):
                    break
            train_loss = float(loss_sum) / max(self.batch, 1)
            self._check_loss(train_loss, "training loss")
            with torch.no_grad():  # the epoch's own batches: a resumed run prepares alike
                learner.prepare_evaluation(batches(self.data.train, spec.batch_size, shuffle=True, seed=spec.seed, epoch=self.epoch))
            val = self._evaluate(learner, self.data.val, copies=True)
            train_acc = self._evaluate(learner, self.data.train, limit=TRAIN_ACCURACY_EXAMPLES).accuracy
            val_loss = val.loss
            self._check_loss(val_loss, "validation loss")
            self.epoch += 1
            self.history.append(
                EpochRecord(
                    epoch=self.epoch, step=self.step, train_loss=train_loss, train_acc=train_acc,
                    val_loss=val_loss, val_acc=val.accuracy, seconds=self._elapsed(start),
                    posterior=learner.posterior(), rates=learner.rates() or None, copy_val_losses=val.copy_losses,
                )
            )
            self.batch, self.epoch_loss_sum = 0, 0.0
            self._save(learner, start)
            self.on_progress(self._progress(start, per_epoch, train_loss, val_loss, checkpointed=True))

    def _elapsed(self, start: float) -> float:
        return self.elapsed_before + time.perf_counter() - start

    def _out_of_steps_or_time(self, start: float) -> bool:
        """A step or time budget may end a run inside an epoch."""
        budget = self.spec.budget
        if budget.steps is not None:
            return self.step >= budget.steps
        if budget.seconds is not None:
            return self._elapsed(start) >= budget.seconds
        return False

    def _budget_spent(self, start: float) -> bool:
        epochs = self.spec.budget.epochs
        return self._out_of_steps_or_time(start) or (epochs is not None and self.epoch >= epochs)

    def _checkpoint_due(self) -> bool:
        """Inside an epoch: every ``checkpoint_every`` steps, and after ``checkpoint_seconds``."""
        every, seconds = self.spec.checkpoint_every, self.spec.checkpoint_seconds
        if self.checkpoint is None:
            return False
        if every and self.step % every == 0:
            return True
        return seconds is not None and time.perf_counter() - self.last_checkpoint >= seconds

    def _progress(self, start: float, per_epoch: int, train_loss, val_loss, checkpointed: bool = False) -> Progress:
        budget = self.spec.budget
        if budget.steps is not None:
            fraction = self.step / budget.steps
        elif budget.seconds is not None:
            fraction = self._elapsed(start) / budget.seconds
        else:
            fraction = (self.epoch + self.batch / max(per_epoch, 1)) / budget.epochs
        return Progress(self.spec.key, self.epoch, self.step, min(fraction, 1.0), train_loss, val_loss, checkpointed)

    @torch.no_grad()
    def _evaluate(self, learner: Learner, dataset, limit: int | None = None, copies: bool = False) -> Evaluation:
        """Mean loss and accuracy on ``dataset`` (its first ``limit`` examples), in eval mode;
        with ``copies``, each output copy's mean loss too, where the method has copies."""
        learner.module.eval()
        loss_sum = torch.zeros((), dtype=accumulator_dtype(self.device), device=self.device)
        copy_sum: Tensor | None = None
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        count = 0
        for x, y in batches(dataset, EVAL_BATCH_SIZE, shuffle=False, seed=0, epoch=0):
            if limit is not None and count >= limit:
                break
            x, y = x.to(self.device), y.to(self.device)
            losses, labels, copy_losses = learner.evaluate_with_copies(x, y) if copies else (*learner.evaluate(x, y), None)
            loss_sum += losses.sum()
            if copy_losses is not None:
                summed = copy_losses.sum(dim=0, dtype=loss_sum.dtype)
                copy_sum = summed if copy_sum is None else copy_sum + summed
            if labels is not None:
                correct += (labels == y).sum()
            count += y.shape[0]
        accuracy = None if self.data.info.task == "regression" else int(correct) / count
        means = None if copy_sum is None else tuple(float(total) / count for total in copy_sum.tolist())
        return Evaluation(float(loss_sum) / count, accuracy, means)

    # -- divergence ----------------------------------------------------------------------
    def _check_loss(self, value: float, what: str) -> None:
        where = f"at step {self.step} (epoch {self.epoch + 1})"
        if not math.isfinite(value):
            raise AlraoDivergedError(self.step, value, f"{what} became {value} {where}")
        info = self.data.info
        level = blow_up_level(self.first_loss, info.num_classes, info.task)
        if value > level:
            raise AlraoDivergedError(
                self.step, value,
                f"{what} reached {value:.3g}, over {BLOW_UP_FACTOR:g}x its starting level "
                f"({level / BLOW_UP_FACTOR:.3g}), {where}",
            )

    # -- checkpoints (the format: study/checkpoint.py) ----------------------------------
    def _save(self, learner: Learner, start: float) -> None:
        if self.checkpoint is None:
            return
        position = RunPosition(
            epoch=self.epoch, batch=self.batch, step=self.step, epoch_loss_sum=self.epoch_loss_sum,
            first_loss=self.first_loss, elapsed=self._elapsed(start), history=tuple(self.history),
            start_checksum=self.start_checksum,
        )
        self.checkpoint.save(learner, position, self.device)
        self.last_checkpoint = time.perf_counter()

    def _restore(self, learner: Learner) -> None:
        if self.checkpoint is None:
            return
        try:
            position = self.checkpoint.restore(learner, self.device)
        except UnusableCheckpoint as unusable:  # it costs a restart, not the run
            logger.warning("%s: ignoring the checkpoint %s: %s; starting afresh", self.spec.key, self.checkpoint.path, unusable)
            return
        if position is None:
            return
        self.epoch, self.batch, self.step = position.epoch, position.batch, position.step
        self.epoch_loss_sum = position.epoch_loss_sum
        self.first_loss = position.first_loss
        self.elapsed_before = position.elapsed
        self.history = list(position.history)
        self.start_checksum = position.start_checksum
        logger.debug("%s: resumed from its checkpoint at step %d (epoch %d)", self.spec.key, self.step, self.epoch + 1)
