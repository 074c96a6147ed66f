"""``alrao check``: smoke-check model code in seconds, before a screen or in CI.

A screen trains every architecture for many epochs; a model that cannot be wrapped,
never trains one of its layers or cannot be reloaded from a checkpoint should fail in
seconds, with the reason, before anything is spent on it. Each architecture goes through
six items, in order, and stops at its first failure (the later items need what the
earlier ones built, so they are reported as skipped):

1. ``build``: the model imports and builds for the data's classes and example shape;
2. ``forward``: one batch gives finite ``[batch, num_classes]`` outputs;
3. ``wrap``: Alrao finds the output layer (or the one the user named) and wraps the
   model; parameters that fell back to one learning rate per tensor are noted;
4. ``train``: the model as written (not wrapped), trained on one fixed batch by the
   screen's Adam baseline at 1e-3, gets finite losses and finite gradients, reaches
   every trainable parameter with a gradient, and lowers its loss (a model that cannot
   overfit 16 examples cannot learn); frozen parameters are named, not checked;
5. ``serialize``: the run checkpoint a screen writes (:mod:`alrao_cli.study.checkpoint`)
   carries the model and optimizer into a model built from another seed (what resuming
   a screen does). A model that is random by itself cannot be compared with its reload:
   controls detect that and leave the verdict to ``deterministic``, whose reason then
   names the real cause;
6. ``deterministic``: a second build and run with the same seed gives identical numbers
   (what makes a screen reproducible).

The items wrap, train and save through the screen's own code (its Alrao and Adam
learners, :func:`~alrao_cli.study.train.wrap_for_training`, the run checkpoint), so a
passing check means a screen's run of the model works. Only the seeding differs: a check
seeds torch alone, so that a model drawing from NumPy or Python's ``random`` is caught.

Everything runs on one fixed batch, so the whole zoo checks in a few seconds on CPU,
on :data:`CHECK_THREADS` thread(s). Nothing here prints: :mod:`alrao_cli.report.check`
shows the results.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import sysconfig
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from alrao_cli.alrao.head import probe_forward
from alrao_cli.alrao.model import lazy_parameters_text
from alrao_cli.config.schema import model_settings
from alrao_cli.data.batches import batches
from alrao_cli.data.datasets import LoadedData
from alrao_cli.data.spec import DataInfo
from alrao_cli.errors import AlraoUserError
from alrao_cli.sources.arch import expand_arch
from alrao_cli.sources.build import build_model, count_parameters
from alrao_cli.study.attempt import failure_line, is_expected_failure
from alrao_cli.study.checkpoint import Checkpoint, RunPosition, UnusableCheckpoint
from alrao_cli.study.guard import contained, guard
from alrao_cli.study.methods.base import Learner
from alrao_cli.study.spec import AdamOptions, AlraoOptions, MethodSpec
from alrao_cli.study.torch_startup import import_what_the_first_step_imports
from alrao_cli.study.train import wrap_for_training

CHECK_ITEMS = ("build", "forward", "wrap", "train", "serialize", "deterministic")
BATCH_SIZE = 16
# The Alrao learner's range. Its rates are not judged (train uses Adam): serialize steps it
# only so that the checkpoint has optimizer state to carry.
CHECK_LR_MIN = 1e-3
CHECK_LR_MAX = 1.0
CHECK_COPIES = 5
# Some momentum, so that the optimizer has state that serialization must carry.
CHECK_MOMENTUM = 0.5
# The train item's rate, for the screen's Adam baseline. Adam's step is about its rate
# whatever the scale of the gradient, so one rate suits every model; Alrao's fastest
# features do not: their transient lifts a healthy vgg11_bn's loss a thousandfold in five steps.
TRAIN_LR = 1e-3
# A check works on 16 examples: one thread is faster than two, and never stalls behind
# whatever else the CI machine runs.
CHECK_THREADS = 1

Status = Literal["passed", "failed", "skipped"]

_TORCH_DIR = Path(torch.__file__).resolve().parent
_ALRAO_DIR = Path(__file__).resolve().parents[1]  # the alrao_cli package
_STDLIB_DIR = Path(sysconfig.get_paths()["stdlib"]).resolve()


@dataclass(frozen=True, slots=True)
class ItemResult:
    """The outcome of one item for one architecture.

    ``reason`` (one line) says why a failed item failed; ``detail`` is what a passed item
    found (a parameter count, the loss going down), for the JSON and JUnit reports;
    ``note`` is what the user should see even in the table view, because it may need
    action (parameters with one rate per tensor, a comparison that could not be made).
    """

    name: str
    status: Status
    seconds: float
    reason: str | None = None
    detail: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class ArchCheck:
    """All the items of one architecture, in :data:`CHECK_ITEMS` order."""

    arch: str
    items: tuple[ItemResult, ...]

    @property
    def passed(self) -> bool:
        return all(item.status == "passed" for item in self.items)


class CheckFailed(AlraoUserError):
    """An item's condition did not hold; the message is the reason shown to the user.

    A user error: the model's code is what has to change, and the message says all.
    """


@dataclass(frozen=True, slots=True)
class _Passed:
    """What an item returns when its condition holds (see :class:`ItemResult`)."""

    detail: str
    note: str | None = None


def run_checks(
    archs: list[str],
    data: LoadedData,
    steps: int = 5,
    seed: int = 0,
    model_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    heads: Mapping[str, str] | None = None,
) -> list[ArchCheck]:
    """Check every architecture the ARCH strings name, in order.

    Each ARCH is expanded (a file or a zoo pattern may name several models); one that
    cannot be resolved fails its ``build`` item with the error's message. A failing
    architecture never stops the others. ``model_kwargs`` and ``heads`` are keyed as in
    a screen's config: by the ARCH as given or by the model it expands to, and ``heads``
    also by ``"*"`` for every ARCH.
    """
    _check_steps(steps)
    model_kwargs, heads = model_kwargs or {}, heads or {}
    import_what_the_first_step_imports(torch.optim.Adam)  # the train item's (_TRAIN_METHOD): no architecture's time
    results: list[ArchCheck] = []
    with torch_threads(CHECK_THREADS):
        for arch in archs:
            started = time.perf_counter()
            try:
                with guard():  # what model code does to the process ends with its architecture
                    canonical = expand_arch(arch)
            except Exception as error:  # noqa: BLE001 - any user file may raise anything while importing
                results.append(failed_at_build(arch, failure_with_location(error), time.perf_counter() - started))
                continue
            for name in canonical:
                _, kwargs, head = model_settings(model_kwargs, heads, arch, name)
                with guard():
                    results.append(check_architecture(name, data, steps, seed, kwargs, head))
    return results


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` intra-op threads, then give back the number there was.

    The thread count is the process's: set for the checks only, not for whatever the
    caller runs after them.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def check_architecture(
    arch: str,
    data: LoadedData,
    steps: int = 5,
    seed: int = 0,
    kwargs: Mapping[str, Any] | None = None,
    head: str | None = None,
) -> ArchCheck:
    """Run the six items on one architecture, stopping at the first that fails.

    ``kwargs`` go to the model's constructor; ``head`` names its output layer where
    Alrao cannot find it. The global torch random state is restored afterwards:
    checking leaves the caller's random numbers as they were.
    """
    _check_steps(steps)
    x, y = fixed_batch(data, seed)
    checker = _Checker(arch, data.info, x, y, steps, seed, dict(kwargs or {}), head)
    items: list[ItemResult] = []
    with torch.random.fork_rng(devices=[]):
        for name in CHECK_ITEMS:
            if items and items[-1].status != "passed":
                items.append(ItemResult(name, "skipped", 0.0))
                continue
            items.append(_run_item(name, getattr(checker, name)))
    return ArchCheck(arch, tuple(items))


def fixed_batch(data: LoadedData, seed: int) -> tuple[Tensor, Tensor]:
    """The first :data:`BATCH_SIZE` training examples: the one batch every item uses."""
    first = next(iter(batches(data.train, BATCH_SIZE, shuffle=False, seed=seed, epoch=0)), None)
    if first is None:
        raise AlraoUserError(f"the training set of {data.info.name} is empty", hint="check the --data source")
    return first


def failure_with_location(error: BaseException) -> str:
    """The screen's one line for a failure (:func:`~alrao_cli.study.attempt.failure_line`), and where.

    An unexpected exception raised in model code also says where (``file:line``), since
    in CI that line is all the user sees.
    """
    reason = failure_line(error)
    if not is_expected_failure(error):
        where = _model_code_location(error)
        if where:
            reason += f" (at {where})"
    return reason


def _model_code_location(error: BaseException) -> str | None:
    """``file:line`` of the deepest frame in the model's code (the zoo's or the user's; not torch, alrao or the stdlib)."""
    zoo = _zoo_dir()
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        path = Path(frame.filename).resolve()
        in_library = any(path.is_relative_to(folder) for folder in (_TORCH_DIR, _ALRAO_DIR, _STDLIB_DIR))
        if path.is_file() and ((zoo is not None and path.is_relative_to(zoo)) or not in_library):
            return f"{frame.filename}:{frame.lineno}"
    return None


@functools.cache
def _zoo_dir() -> Path | None:
    """The built-in zoo's folder (``models/`` of a checkout, ``alrao_cli/zoo`` once installed)."""
    spec = importlib.util.find_spec("alrao_cli.zoo")
    return Path(spec.origin).resolve().parent if spec is not None and spec.origin else None


def _check_steps(steps: int) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise AlraoUserError(
            f"the number of check steps must be an integer of at least 2, got {steps!r}",
            hint="the train item compares the lowest loss after the first step with the first",
        )


def failed_at_build(arch: str, reason: str, seconds: float) -> ArchCheck:
    """An architecture that failed before its first item could pass: build failed, the rest skipped."""
    build = ItemResult(CHECK_ITEMS[0], "failed", seconds, reason)
    return ArchCheck(arch, (build, *(ItemResult(name, "skipped", 0.0) for name in CHECK_ITEMS[1:])))


def _run_item(name: str, item: Callable[[], _Passed]) -> ItemResult:
    started = time.perf_counter()
    try:
        with contained():  # sys.exit() and the like fail the item, not the whole check
            passed = item()
    except Exception as error:  # noqa: BLE001 - a model's code may raise anything: that is what is checked
        return ItemResult(name, "failed", time.perf_counter() - started, failure_with_location(error))
    return ItemResult(name, "passed", time.perf_counter() - started, detail=passed.detail, note=passed.note)


def _size_text(size: int) -> str:
    return f"{size / 2**20:,.1f} MiB" if size >= 2**20 else f"{size / 2**10:,.0f} KiB"


def _has_gradient(parameter: Tensor) -> bool:
    """Whether the last backward reached the parameter with anything but zeros."""
    return parameter.grad is not None and bool(parameter.grad.any())


def _largest_difference(a: Tensor, b: Tensor) -> float:
    """The largest absolute difference; equal values differ by 0, infinities and NaNs included
    (inf - inf is NaN, which would read as "different" and wrongly call the model random)."""
    a, b = a.double(), b.double()
    same = (a == b) | (a.isnan() & b.isnan())
    return float(torch.where(same, 0.0, (a - b).abs()).max())


def _check_training_output(model: nn.Module, x: Tensor) -> None:
    """forward() in training mode returns one tensor too (forward checked eval mode only).

    A model that returns auxiliary outputs as well while training (torchvision's googlenet
    built with ``aux_logits: true``) would otherwise fail the loss with a bare TypeError.
    """
    with torch.no_grad():
        output = model.train()(x)
    if not isinstance(output, Tensor):
        raise CheckFailed(
            f"in training mode forward() returns a {type(output).__name__}, not one tensor [batch, num_classes] "
            "(auxiliary outputs? return only the logits while training, or drop aux_logits: true from model_kwargs)"
        )


# The train item's optimizer: the screen's Adam baseline, without weight decay.
_TRAIN_METHOD = MethodSpec("adam", lr=TRAIN_LR, options=AdamOptions(weight_decay=0.0))
_TRAIN_OPTIMIZER = f"Adam at lr {TRAIN_LR:g}"
_NOT_COMPARED = "not compared: the model is not deterministic (see deterministic)"
_UNSEEDED = "the model draws random numbers outside torch's seeded generator (NumPy, Python's random, its own)"


class _Checker:
    """The items of one architecture, as methods sharing what the earlier ones built.

    Each item returns :class:`_Passed` and raises to fail. The ``deterministic`` item
    runs ``build``, ``forward``, ``wrap`` and ``train`` again on a second checker, in the
    same order, so that the two runs consume random numbers identically.
    """

    def __init__(
        self,
        arch: str,
        info: DataInfo,
        x: Tensor,
        y: Tensor,
        steps: int,
        seed: int,
        kwargs: dict[str, Any],
        head: str | None,
    ) -> None:
        self.arch, self.info, self.x, self.y = arch, info, x, y
        self.steps, self.seed, self.kwargs, self.head = steps, seed, kwargs, head
        # The screen's Alrao method, with a range and a momentum that suit a few steps on one batch.
        options = AlraoOptions(
            lr_min=CHECK_LR_MIN, lr_max=CHECK_LR_MAX, copies=CHECK_COPIES, momentum=CHECK_MOMENTUM, head=head
        )
        self.method = MethodSpec("alrao", options=options)
        self.model: nn.Module | None = None
        self.output: Tensor | None = None  # the unwrapped model's output on the batch
        self.lazy = False  # whether the model has lazy layers, sized by its first forward
        self.learner: Learner | None = None  # the wrapped model and its optimizer, as a screen trains them
        self.losses: tuple[float, ...] = ()
        self.trained_output: Tensor | None = None  # the train item's model's output after its steps

    # -- shared by the items -----------------------------------------------------------
    def _build(self, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return build_model(self.arch, self.info.num_classes, self.info.input_shape, self.kwargs)

    def _wrap(self, model: nn.Module, seed: int) -> Learner:
        return wrap_for_training(model, self.method, self.info, seed, self.x, self.y)

    def _checkpoint(self, folder: str) -> Checkpoint:
        return Checkpoint(Path(folder) / "check.pt", self.arch, f"alrao check|{self.arch}|seed={self.seed}")

    def _reload(self, checkpoint: Checkpoint) -> Learner:
        """A learner built from another seed (other values everywhere), loaded from ``checkpoint``.

        Each call reads the file afresh, so that two reloads share no tensor. The process's
        random generators are left alone: the comparisons below seed what they need.
        """
        learner = self._wrap(self._build(self.seed + 1), self.seed + 1)
        try:
            position = checkpoint.restore(learner, generators=False)
        except UnusableCheckpoint as unusable:
            raise CheckFailed(f"the run checkpoint of the trained model does not load back: {unusable}") from None
        if position is None:
            raise CheckFailed(f"saving the run checkpoint wrote nothing to {checkpoint.path}")
        return learner

    def _seeded_step(self, learner: Learner) -> Tensor:
        """One step with the same torch random numbers each time; the output after it."""
        torch.manual_seed(self.seed)
        learner.train_step(self.x, self.y)
        return self._eval_output(learner.module)

    def _eval_output(self, model: nn.Module) -> Any:
        """The model's output on the batch in eval mode (no dropout, no BatchNorm update)."""
        return probe_forward(model, self.x)

    # -- the items ----------------------------------------------------------------------
    def build(self) -> _Passed:
        self.model = self._build(self.seed)
        self.lazy = bool(lazy_parameters_text(self.model))
        if self.lazy:  # sized by the first forward: counted there
            return _Passed(f"{type(self.model).__name__}, lazy layers (parameters counted after the forward)")
        return _Passed(f"{type(self.model).__name__}, {count_parameters(self.model):,} parameters")

    def forward(self) -> _Passed:
        output = self._eval_output(self.model)
        expected = (self.x.shape[0], self.info.num_classes)
        if not isinstance(output, Tensor):
            raise CheckFailed(
                f"forward() returned a {type(output).__name__}; expected one tensor [batch, num_classes]"
            )
        if tuple(output.shape) != expected:
            raise CheckFailed(
                f"the output is {list(output.shape)}, expected {list(expected)} ([batch, num_classes]) "
                f"for an input of {list(self.x.shape)}"
            )
        bad = int((~torch.isfinite(output)).sum())
        if bad:
            raise CheckFailed(f"the output holds {bad} non-finite values (NaN or inf) out of {output.numel()}")
        self.output = output
        if self.lazy:
            return _Passed(f"output {list(output.shape)}, {count_parameters(self.model):,} parameters")
        return _Passed(f"output {list(output.shape)}")

    def wrap(self) -> _Passed:
        self.learner = self._wrap(self.model, self.seed)  # also evaluates the wrapped model on the batch
        wrapped = self.learner.module
        detail = f"head {wrapped.head_name!r} replaced by {CHECK_COPIES} copies"
        fell_back = wrapped.single_rate_parameters()
        note = f"one rate per tensor (no per-feature rule) for: {', '.join(fell_back)}" if fell_back else None
        return _Passed(detail, note)

    def train(self) -> _Passed:
        """The model can learn: a fresh build of it, as written, trained on the batch by Adam.

        What is judged is the model, not Alrao's rates: the wrapped model's fastest
        features have a transient that lifts the loss of a healthy model for many steps
        (vgg11_bn on 32x32 images), and the wrap item has shown that Alrao takes the
        model. So a second build with the same seed (the first one is wrapped by now)
        trains as the screen's Adam baseline trains it, at a rate safe whatever the scale
        of the gradients. Each step draws the same random numbers (dropout masks), so
        that its loss differs from the others by the parameters alone; the lowest loss
        after the first step is compared with the first, since a safe step may still
        overshoot once. The model is dropped afterwards: only its numbers are kept.
        """
        model = self._build(self.seed)
        _check_training_output(model, self.x)
        learner = wrap_for_training(model, _TRAIN_METHOD, self.info, self.seed, self.x, self.y)
        named = list(model.named_parameters())
        trainable = [name for name, p in named if p.requires_grad]
        frozen = [name for name, p in named if not p.requires_grad]
        reached: set[str] = set()
        losses = []
        for step in range(1, self.steps + 1):
            torch.manual_seed(self.seed)
            loss = float(learner.train_step(self.x, self.y))
            if not math.isfinite(loss):
                raise CheckFailed(f"the loss is not finite ({loss}) at step {step} of {self.steps}")
            not_finite = [name for name, p in named if p.grad is not None and not bool(p.grad.isfinite().all())]
            if not_finite:
                raise CheckFailed(
                    f"the gradient of {len(not_finite)} parameter(s) is not finite (NaN or inf) at step {step} "
                    f"of {self.steps}: {', '.join(not_finite)}"
                )
            losses.append(loss)
            reached.update(name for name, p in named if _has_gradient(p))
        missing = [name for name in trainable if name not in reached]
        if missing:
            raise CheckFailed(
                f"no gradient reached {len(missing)} trainable parameter(s): {', '.join(missing)} "
                "(unused in forward(), detached, or with an always-zero gradient)"
            )
        first, lowest = losses[0], min(losses[1:])
        if not lowest < first:
            raise CheckFailed(
                f"the loss on one fixed batch did not go down in {self.steps} steps of {_TRAIN_OPTIMIZER} "
                f"({first:.4f} at the start, {lowest:.4f} at its lowest)"
            )
        self.losses = tuple(losses)
        self.trained_output = self._eval_output(model)
        detail = f"loss {first:.3f} -> {lowest:.3f} (lowest) in {self.steps} steps of {_TRAIN_OPTIMIZER}"
        if frozen:
            detail += f"; frozen, not checked: {', '.join(frozen)}"
        return _Passed(detail)

    def serialize(self) -> _Passed:
        """The run checkpoint carries the state into a learner built from another seed.

        The wrapped learner takes one step first (train trains a build of its own), so that
        the checkpoint holds optimizer state. Each comparison has a control first: the same
        model evaluated twice, two reloads of the same file stepped alike. If a control
        already differs, the model is random by itself: a difference would wrongly blame the
        checkpoint, so the verdict is left to ``deterministic``.
        """
        with tempfile.TemporaryDirectory(prefix="alrao-check-") as folder:
            checkpoint = self._checkpoint(folder)
            self._seeded_step(self.learner)  # so that the optimizer has state (momentum) to carry
            checkpoint.save(self.learner, RunPosition(step=1))
            state_size = f"{_size_text(checkpoint.path.stat().st_size)} of state"
            original = self._eval_output(self.learner.module)
            if _largest_difference(original, self._eval_output(self.learner.module)):
                return _Passed(state_size, _NOT_COMPARED)
            reloaded = self._reload(checkpoint)
            difference = _largest_difference(original, self._eval_output(reloaded.module))
            if difference:
                raise CheckFailed(
                    f"outputs differ after loading the state dict (by up to {difference:.3g}): some state "
                    "is not saved (a tensor attribute that is not a registered buffer?)"
                )
            stepped = self._seeded_step(reloaded)
            if _largest_difference(stepped, self._seeded_step(self._reload(checkpoint))):
                return _Passed(state_size, _NOT_COMPARED)
        difference = _largest_difference(self._seeded_step(self.learner), stepped)
        if difference:
            raise CheckFailed(
                f"a step of the reloaded model and optimizer differs from the same step of the originals "
                f"(by up to {difference:.3g}): the optimizer's state did not come through"
            )
        return _Passed(state_size)

    def deterministic(self) -> _Passed:
        again = _Checker(self.arch, self.info, self.x, self.y, self.steps, self.seed, self.kwargs, self.head)
        try:
            for item in (again.build, again.forward, again.wrap, again.train):
                item()
        except Exception as error:  # the first run passed these items: the second must too
            raise CheckFailed(
                f"a second run with seed {self.seed} failed where the first passed: {failure_with_location(error)}"
            ) from error
        difference = _largest_difference(self.output, again.output)
        if difference:
            raise CheckFailed(
                f"two builds with seed {self.seed} give different outputs (by up to {difference:.3g}): {_UNSEEDED}"
            )
        for step, (first, second) in enumerate(zip(self.losses, again.losses), start=1):
            if first != second:
                raise CheckFailed(
                    f"two runs with seed {self.seed} give different losses at step {step} "
                    f"({first!r} vs {second!r}): {_UNSEEDED}"
                )
        difference = _largest_difference(self.trained_output, again.trained_output)
        if difference:
            raise CheckFailed(
                f"two runs with seed {self.seed} give different outputs after training "
                f"(by up to {difference:.3g}): {_UNSEEDED}"
            )
        return _Passed(f"two runs with seed {self.seed}: identical outputs and losses")
