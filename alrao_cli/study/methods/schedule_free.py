"""Schedule-Free SGD and AdamW: no schedule, an average of the iterates evaluated instead (``schedulefree``).

Defazio et al., "The road less scheduled" (NeurIPS 2024, arXiv:2405.15682), as the
authors' package ``schedulefree`` implements it. The optimizer trains at a point ``y``
between the base iterate ``z`` and their average ``x``, and ``x`` is the model to
evaluate. Its ``train()`` and ``eval()`` move the parameters between ``y`` and ``x``: the
learner switches them with the model's mode, switching to ``train()`` before a step and to
``eval()`` before an evaluation (idempotent, so a loop that switches only the model is
served too). The checkpoint keeps the parameters as they are and the optimizer's mode
with them (a round trip ``y -> x -> y`` is not exact in floating point, so saving does not
switch).

BatchNorm's running statistics are gathered at ``y`` during training but used at ``x``;
the authors advise recomputing them at ``x`` before evaluating, by forward passes over a
few training batches in train mode. :meth:`ScheduleFreeLearner.prepare_evaluation` does
so, resetting the statistics first and averaging over ``bn_batches`` batches with equal
weights (the authors' loop with BatchNorm's own cumulative average, so that no trace of
the statistics at ``y`` remains).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from alrao_cli.config.schema import DEFAULTS
from alrao_cli.study.methods import register_method
from alrao_cli.study.methods.base import (
    TorchOptimizerLearner,
    TrainingMethod,
    import_package,
)
from alrao_cli.study.spec import MethodOptions

SF_PAPER = "Defazio et al. 2024, The road less scheduled"
BN_BATCHES = 50  # the authors' example: itertools.islice(train_loader, 50)


@dataclass(frozen=True, slots=True)
class SFSGDOptions(MethodOptions):
    """Schedule-Free SGD's, at the defaults of ``schedulefree.SGDScheduleFree`` (1.4).

    ``beta``: the interpolation ``y = (1 - beta) z + beta x`` (the package's ``momentum``,
    0.9; named apart from the study setting ``momentum``, whose 0 the method does not
    accept); ``warmup_steps``: a linear warm-up of the rate (0); ``r`` and
    ``weight_lr_power``: the weights of the average, ``(t+1)^r lr_max^weight_lr_power``
    (0 and 2); ``weight_decay``: the study's setting, L2 at ``y``; ``bn_batches``: training
    batches that recompute BatchNorm's statistics at ``x`` before each evaluation (50, the
    authors' example).
    """

    beta: float = 0.9
    warmup_steps: int = 0
    r: float = 0.0
    weight_lr_power: float = 2.0
    weight_decay: float = DEFAULTS.weight_decay
    bn_batches: int = BN_BATCHES


@dataclass(frozen=True, slots=True)
class SFAdamWOptions(MethodOptions):
    """Schedule-Free AdamW's, at the defaults of ``schedulefree.AdamWScheduleFree`` (1.4):
    ``beta1`` is the interpolation of SF-SGD's ``beta`` (0.9), ``beta2`` and ``eps``
    Adam's (0.999, 1e-8); the rest as :class:`SFSGDOptions` (``weight_decay`` is decoupled,
    applied at ``y``, as the package does)."""

    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    warmup_steps: int = 0
    r: float = 0.0
    weight_lr_power: float = 2.0
    weight_decay: float = DEFAULTS.weight_decay
    bn_batches: int = BN_BATCHES


class ScheduleFreeLearner(TorchOptimizerLearner):
    """A model trained by a Schedule-Free optimizer, evaluated at the average ``x``."""

    def __init__(self, module: nn.Module, optimizer: torch.optim.Optimizer, task: str, bn_batches: int) -> None:
        super().__init__(module, optimizer, task)
        self.bn_batches = bn_batches
        optimizer.train()  # nothing to move yet: it only records the mode

    def train_step(self, x: Tensor, y: Tensor) -> Tensor:
        self.optimizer.train()  # parameters to y, if they were at x
        return super().train_step(x, y)

    def evaluate(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor | None]:
        self.optimizer.eval()  # parameters to x, if they were at y
        return super().evaluate(x, y)

    @torch.no_grad()
    def prepare_evaluation(self, train_batches: Iterable[tuple[Tensor, Tensor]]) -> None:
        """Move to ``x`` and recompute every BatchNorm's running statistics there: reset,
        then the equal-weight average over up to ``bn_batches`` training batches, forwarded
        in train mode. Nothing to do (and no batch read) without BatchNorm."""
        self.optimizer.eval()
        norms = [
            m for m in self.module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
        ]
        if not norms or self.bn_batches <= 0:
            return
        saved = [{name: buffer.clone() for name, buffer in m.named_buffers(recurse=False)} for m in norms]
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average: every batch weighs the same
        was_training = self.module.training
        self.module.train()
        device = next(self.module.parameters()).device
        seen = 0
        try:
            for x, _ in itertools.islice(train_batches, self.bn_batches):
                self.module(x.to(device))
                seen += 1
        finally:
            for m, momentum in zip(norms, momenta):
                m.momentum = momentum
            self.module.train(was_training)
        if not seen:  # no batch given: keep the statistics there were
            for m, buffers in zip(norms, saved):
                for name, buffer in buffers.items():
                    getattr(m, name).copy_(buffer)

    def rates(self) -> dict[str, float]:
        """``lr``: the rate of the last step, warm-up included (of the first step, before it)."""
        group = self.optimizer.param_groups[0]
        k, warmup = group["k"], group["warmup_steps"]
        step = max(k - 1, 0)
        return {"lr": group["lr"] * ((step + 1) / warmup if step < warmup else 1.0)}

    def explain(self) -> dict[str, Any]:
        return {"rates": self.rates(), "bn_batches": self.bn_batches}


@register_method("sf-sgd")
class SFSGDMethod(TrainingMethod):
    """Schedule-Free SGD: SGD evaluated at a running average of its iterates, no schedule; one run.

    Defazio et al. 2024, Eq. (1)-(3): ``y_t = (1 - beta) z_t + beta x_t``,
    ``z_{t+1} = z_t - lr g(y_t)``, ``x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1}`` with
    ``c_{t+1} = w_{t+1} / sum_{i<=t+1} w_i`` (``w = 1`` without warm-up: the uniform
    average). ``lr`` is the package's default, 1.0 (Schedule-Free SGD takes larger rates
    than scheduled SGD).
    """

    label = "SF-SGD"
    paper = SF_PAPER
    default_lr = 1.0
    options_type = SFSGDOptions

    def learner(self, model, spec, context):
        options: SFSGDOptions = self.options(spec)
        schedulefree = import_package(self.name, "schedulefree")
        optimizer = schedulefree.SGDScheduleFree(
            model.parameters(), lr=self.rate(spec), momentum=options.beta,
            weight_decay=options.weight_decay, warmup_steps=options.warmup_steps, r=options.r,
            weight_lr_power=options.weight_lr_power,
        )
        return ScheduleFreeLearner(model, optimizer, context.task, options.bn_batches)


@register_method("sf-adamw")
class SFAdamWMethod(TrainingMethod):
    """Schedule-Free AdamW: AdamW evaluated at a running average of its iterates, no schedule; one run.

    Defazio et al. 2024, Algorithm 1 (Schedule-Free AdamW): the interpolation and averaging
    of SF-SGD (``beta1`` in the role of ``beta``), with the gradient divided by
    ``sqrt(v_hat) + eps`` (Adam's second moment, bias-corrected) before the ``z`` step.
    ``lr`` is the package's default, 0.0025.
    """

    label = "SF-AdamW"
    paper = SF_PAPER
    default_lr = 0.0025
    options_type = SFAdamWOptions

    def learner(self, model, spec, context):
        options: SFAdamWOptions = self.options(spec)
        schedulefree = import_package(self.name, "schedulefree")
        optimizer = schedulefree.AdamWScheduleFree(
            model.parameters(), lr=self.rate(spec),
            betas=(options.beta1, options.beta2), eps=options.eps, weight_decay=options.weight_decay,
            warmup_steps=options.warmup_steps, r=options.r, weight_lr_power=options.weight_lr_power,
        )
        return ScheduleFreeLearner(model, optimizer, context.task, options.bn_batches)
