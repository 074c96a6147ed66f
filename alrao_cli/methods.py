"""Training methods: Alrao and the baselines it is compared with, one small class each.

A method turns a freshly built model into a :class:`Learner`: the thing the training loop
drives, one minibatch at a time, without knowing which method it is. Adding a baseline
(hypergradient descent, LARS, 1cycle, Prodigy...) means writing one class with
``@register_method("name")`` that declares its label and whether it is tuned over the
rate grid or run once; ``--baseline``, the plan, the loop, the results and the reports
need no change.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from alrao_cli.alrao import AlraoModel, AlraoSGD
from alrao_cli.errors import AlraoUserError

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """Which method, with which settings: plain data that travels with a run."""

    name: str
    lr: float | None = None  # the single rate of single-rate methods
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "lr": self.lr, "options": dict(self.options)}


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

    def explain(self) -> dict[str, Any]:
        """What this method can say about itself after training (JSON-able)."""
        return {}


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
    config_options: ClassVar[tuple[str, ...]] = ("weight_decay",)  # study settings its spec takes

    @property
    def baseline_option(self) -> str:
        """Its name for ``--baseline``: ``NAME-grid`` when it is tuned over the grid (``sgd-grid``)."""
        return f"{self.name}-grid" if self.tuned_over_grid else self.name

    @abstractmethod
    def learner(self, model: nn.Module, spec: MethodSpec, context: LearnerContext) -> Learner:
        """Wrap ``model`` (already on its device) for training."""


METHODS: dict[str, TrainingMethod] = {}


def register_method(name: str):
    """Class decorator: make a :class:`TrainingMethod` available under ``name``."""

    def register(cls: type[TrainingMethod]) -> type[TrainingMethod]:
        cls.name = name
        cls.label = cls.__dict__.get("label", name)  # a registered subclass gets its own label
        METHODS[name] = cls()
        return cls

    return register


def get_method(name: str) -> TrainingMethod:
    if name not in METHODS:
        raise AlraoUserError(f"unknown method {name!r}", hint=f"known methods: {', '.join(sorted(METHODS))}")
    return METHODS[name]


def baseline_methods() -> list[TrainingMethod]:
    """The methods Alrao can be compared with, in the order they were registered."""
    return [method for method in METHODS.values() if method.baseline]


class _TorchOptimizerLearner(Learner):
    """A plain model trained by a standard ``torch.optim`` optimizer."""

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


@register_method("sgd")
class SGDMethod(TrainingMethod):
    """Plain SGD at one learning rate: the grid Alrao is measured against."""

    label = "SGD"
    tuned_over_grid = True
    config_options = ("momentum", "weight_decay")

    def learner(self, model, spec, context):
        options = spec.options
        optimizer = torch.optim.SGD(
            model.parameters(), lr=spec.lr, momentum=options.get("momentum", 0.0),
            weight_decay=options.get("weight_decay", 0.0),
        )
        return _TorchOptimizerLearner(model, optimizer, context.task)


@register_method("adam")
class AdamMethod(TrainingMethod):
    """Adam with its default rate (1e-3): the usual "no tuning" baseline."""

    label = "Adam"
    default_lr = 1e-3

    def learner(self, model, spec, context):
        optimizer = torch.optim.Adam(
            model.parameters(), lr=spec.lr if spec.lr is not None else self.default_lr,
            weight_decay=spec.options.get("weight_decay", 0.0),
        )
        return _TorchOptimizerLearner(model, optimizer, context.task)


class _AlraoLearner(Learner):
    module: AlraoModel

    def train_step(self, x: Tensor, y: Tensor) -> Tensor:
        loss = self.module.loss(x, y)
        self.module.update_switch(loss.copy_log_likelihoods)  # early, as alrao_step does
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward_loss.backward()
        self.optimizer.step()
        return loss.mixture_loss

    def evaluate(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor | None]:
        if self.task == "regression":
            return self.module.mixture_nll(x, y), None
        log_mix = self.module(x)  # the mixture's log-probabilities
        return F.nll_loss(log_mix, y, reduction="none"), log_mix.argmax(-1)

    def posterior(self) -> tuple[float, ...]:
        return tuple(float(a) for a in self.module.switch.posterior)

    def explain(self) -> dict[str, Any]:
        return {
            "posterior": list(self.posterior()),
            "copy_lrs": [float(r) for r in self.module.copy_lrs],
            "rate_summary": self.module.rate_summary(),
            "single_rate_parameters": self.module.single_rate_parameters(),
        }


@register_method("alrao")
class AlraoSGDMethod(TrainingMethod):
    """Alrao-SGD: every feature its random rate, N output copies averaged by the switch."""

    label = "Alrao"
    baseline = False

    def learner(self, model, spec, context):
        options = spec.options
        wrapped = AlraoModel(
            model, context.num_classes,
            lr_min=options.get("lr_min", 1e-5), lr_max=options.get("lr_max", 10.0),
            n_copies=options.get("copies", 10), theta=options.get("theta", 0.999),
            head=options.get("head"), seed=context.seed, task=context.task,
            example_input=context.example_input,
        )
        optimizer = AlraoSGD(
            wrapped, momentum=options.get("momentum", 0.0), weight_decay=options.get("weight_decay", 0.0)
        )
        return _AlraoLearner(wrapped, optimizer, context.task)
