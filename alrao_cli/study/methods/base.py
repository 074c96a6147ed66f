"""What every training method is: a :class:`TrainingMethod` that wraps a model into a
:class:`Learner`, the thing the training loop drives one minibatch at a time without
knowing which method it is."""

from __future__ import annotations

import importlib
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from alrao_cli.errors import AlraoUserError
from alrao_cli.study.spec import MethodOptions, MethodSpec, RunSpec

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class Learner(ABC):
    """A model with its optimizer, as the training loop sees it.

    ``module`` is what is switched between train and eval; ``state_dict`` holds
    everything a checkpoint needs to continue exactly where training stopped.
    """

    def __init__(self, module: nn.Module, optimizer: torch.optim.Optimizer, task: str) -> None:
        self.module = module
        self.optimizer = optimizer
        self.task = task

    @abstractmethod
    def train_step(self, x: Tensor, y: Tensor) -> Tensor:
        """Train on one minibatch; return its loss as a detached 0-d tensor (no host sync)."""

    @abstractmethod
    def evaluate(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor | None]:
        """Each example's negative log-likelihood ``[B]`` and predicted labels (None for regression)."""

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.module.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])

    def posterior(self) -> tuple[float, ...] | None:
        """The weights of the method's output copies, where it has some (Alrao)."""
        return None

    def evaluate_with_copies(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """:meth:`evaluate`, and each example's loss under each output copy alone,
        ``[batch, copies]``, where the method has copies (Alrao; None otherwise). Validation
        keeps their means, so that a run shows how the copy the switch favours does on its
        own, beside the mixture."""
        return (*self.evaluate(x, y), None)

    def explain(self) -> dict[str, Any]:
        """What this method can say about itself after training (JSON-able)."""
        return {}

    def rates(self) -> dict[str, float]:
        """The learning rate(s) the method uses now, by name: the loop records them once per
        epoch, and the reports draw them beside Alrao's switch posterior.

        ``"lr"`` is the headline rate (a schedule's current value, an adaptive method's
        current estimate); ``"lr_min"`` and ``"lr_max"`` give the spread where the rate
        differs between layers or tensors (see :func:`rates_of`). Empty where there is none
        to report (Alrao's rates are fixed and saved once, in :meth:`explain`) or not yet
        (a rate set by the first step).
        """
        return {}

    def prepare_evaluation(self, train_batches: Iterable[tuple[Tensor, Tensor]]) -> None:
        """Make the model ready to be evaluated at the point the method validates; by default nothing.

        The loop calls it once before each validation (before the first :meth:`evaluate`
        of it, under ``torch.no_grad()``, with ``module`` in either mode: a method that
        switches it gives it back as it found it), with training minibatches ``(x, y)``: a
        lazy iterable, of which a method takes only the few it needs (none, by default) and
        moves them to the model's device itself. Pass the same batches in a resumed run as
        in an uninterrupted one (the epoch's own order, say), so that both compute the same.

        Schedule-Free needs it: the weights it evaluates are an average of the iterates it
        trains, and BatchNorm's running statistics, gathered at the trained iterates, do
        not describe them; it recomputes them at the evaluated weights, as its authors
        advise. What this changes belongs to :meth:`state_dict`, so that a run resumed from
        a checkpoint written after the validation continues exactly.
        """

    def before_training(self, save: Callable[[], None]) -> None:
        """Work the method does once before the first step; by default nothing.

        Called by the loop after a checkpoint (if any) is restored, before the first
        :meth:`train_step` of this process, so also when a run resumes: a method keeps in
        :meth:`state_dict` how far it got and does only what is left. ``save()`` writes a
        checkpoint of the run as it stands (the model not yet trained, this learner's state
        as it is now): reversible-HD calls it after each meta-iteration, so that an
        interrupted tuning resumes at the iteration in progress instead of from scratch.
        """

    def finish(self) -> None:
        """Leave behind what other runs need, once the run has trained to its end; by default nothing.

        MLR-SNet saves its meta-trained schedule net here (in ``LearnerContext.run.run_dir``),
        for ``mlrsnet-transfer``'s other architectures and for ``--schedule-net``.
        """


def gaussian_nll(outputs: Tensor, y: Tensor) -> Tensor:
    """Unit-variance Gaussian ``-log p(y)`` per example: the regression loss every method
    reports, so that Alrao's mixture and a plain model are compared on one scale."""
    residual = outputs - y.view(outputs.shape).to(outputs.dtype)
    return 0.5 * residual.pow(2).sum(-1) + _HALF_LOG_2PI * outputs.shape[-1]


@dataclass(frozen=True, slots=True)
class LearnerContext:
    """What a method may need to know about the problem when it wraps a model.

    One record rather than positional arguments, so that a future method (1cycle needs the
    run's total number of steps, say) gets a new field without every method changing.
    """

    num_classes: int
    task: str  # "classification" or "regression"
    seed: int
    example_input: Tensor | None = None  # a small batch on the model's device: Alrao finds the head with it
    # The number of train_step calls from the run's start to its end, where the budget fixes
    # it (epochs or steps; the same value when the run is resumed); None under a time budget.
    # A schedule over the whole run needs it (1cycle); a method that cannot do without it
    # says so with an AlraoUserError.
    total_steps: int | None = None
    run: RunData | None = None  # the run's training data and folder: None outside a run (alrao check)


@dataclass(frozen=True, slots=True)
class RunData:
    """What a method that learns its rate from data needs beyond the model: the training split
    (its meta set is drawn from it, never from the validation split that ranks the models),
    the run's minibatch size, the architecture's label, and the run directory where it may
    leave files for other runs (None when the run keeps none)."""

    label: str
    train: Any  # a torch Dataset: data.datasets.InMemoryDataset or a loader-backed one
    batch_size: int
    steps_per_epoch: int
    run_dir: Path | None = None


class TrainingMethod(ABC):
    """A registered way to train a model: builds its :class:`Learner`, and says how it is run
    and shown next to Alrao. The class attributes are all that the plan, the config's
    ``--baseline`` names, the rankings and the reports read about a method.
    """

    name: ClassVar[str]  # set by @register_method
    label: ClassVar[str]  # how tables and plots name it ("SGD"); the registered name if not given
    baseline: ClassVar[bool] = True  # compared with Alrao; False for Alrao itself
    tuned_over_grid: ClassVar[bool] = False  # run at every rate of --grid, its best rate kept; else run once
    default_lr: ClassVar[float | None] = None  # the rate of a baseline run once (Adam: 1e-3)
    options_type: ClassVar[type[MethodOptions]] = MethodOptions  # its typed options (study/spec.py)

    @property
    def baseline_option(self) -> str:
        """Its name for ``--baseline``: ``NAME-grid`` when it is tuned over the grid (``sgd-grid``)."""
        return f"{self.name}-grid" if self.tuned_over_grid else self.name

    def rate(self, spec: MethodSpec) -> float | None:
        """The run's rate: the spec's (a grid's point, ``--lr``), else the method's ``default_lr``."""
        return spec.lr if spec.lr is not None else self.default_lr

    def options(self, spec: MethodSpec) -> MethodOptions:
        """The spec's options, or the method's defaults when it gives none."""
        if spec.options is None:
            return self.options_type()
        if not isinstance(spec.options, self.options_type):
            raise TypeError(f"{self.name} takes {self.options_type.__name__}, got {type(spec.options).__name__}")
        return spec.options

    @abstractmethod
    def learner(self, model: nn.Module, spec: MethodSpec, context: LearnerContext) -> Learner:
        """Wrap ``model`` (already on its device) for training."""

    def training_runs(self, spec: MethodSpec) -> int:
        """How many training runs of the architecture one result of ``spec`` costs: what a
        fidelity table counts against a grid's runs. One, unless the method trains the
        model more than once before its run proper (``reversible-hd``'s meta rounds)."""
        return 1

    def settle(self, runs: list[RunSpec]) -> list[RunSpec]:
        """This method's runs, once the whole plan is known: by default as planned.

        A method whose runs depend on one another fixes that here, and may refuse the plan
        with an ``AlraoUserError`` (``mlrsnet-transfer`` names the architecture it
        meta-trains on, the first one unless ``--meta-arch`` says).
        """
        return runs

    def stage(self, spec: RunSpec) -> int:
        """When ``spec`` may start: every run of stage 0 finishes before any run of stage 1.

        0 for all runs by default; ``mlrsnet-transfer``'s meta-test runs are stage 1, since
        they load the net its meta-train run saves.
        """
        return 0


def rates_of(values: Sequence[float], headline: float | None = None) -> dict[str, float]:
    """The :meth:`Learner.rates` of per-group or per-tensor ``values``: ``"lr"`` is
    ``headline`` (their mean if not given), and ``"lr_min"``/``"lr_max"`` are added when the
    values differ. Empty for no values."""
    values = [float(v) for v in values]
    if not values:
        return {}
    rates = {"lr": float(headline) if headline is not None else math.fsum(values) / len(values)}
    low, high = min(values), max(values)
    if low != high:
        rates.update(lr_min=low, lr_max=high)
    return rates


def import_package(method: str, package: str, distribution: str | None = None) -> ModuleType:
    """Import the optional package a method wraps, or say in one line how to install it.

    ``distribution`` is its name for pip where that differs from the import name
    (``dog-optimizer`` installs ``dog``). Called inside ``learner()``, so that the registry,
    the plans and the reports never need the package.
    """
    try:
        return importlib.import_module(package)
    except ImportError:
        raise AlraoUserError(
            f"the method {method} needs the package {distribution or package}", hint='pip install "alrao-cli[methods]"'
        ) from None


class TorchOptimizerLearner(Learner):
    """A plain model trained by a standard ``torch.optim`` optimizer."""

    def rates(self) -> dict[str, float]:
        """Each parameter group's ``lr``: the rate itself for a plain optimizer, the current
        value for one that adapts or schedules it in place (SGD-HD, 1cycle)."""
        return rates_of([group["lr"] for group in self.optimizer.param_groups])

    def train_step(self, x: Tensor, y: Tensor) -> Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self._example_losses(self.module(x), y).mean()
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def evaluate(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor | None]:
        scores = self.module(x)
        labels = None if self.task == "regression" else scores.argmax(-1)
        return self._example_losses(scores, y), labels

    def _example_losses(self, scores: Tensor, y: Tensor) -> Tensor:
        if self.task == "regression":
            return gaussian_nll(scores, y)
        return F.cross_entropy(scores, y, reduction="none")
