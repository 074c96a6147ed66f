"""Alrao-SGD, the paper's method and the default screen: every feature its random rate,
N output copies with log-spaced rates averaged by the switch."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor

from alrao_cli.alrao import AlraoModel, AlraoSGD, apply_alrao_loss
from alrao_cli.study.methods import register_method
from alrao_cli.study.methods.base import Learner, TrainingMethod
from alrao_cli.study.spec import AlraoOptions


class AlraoLearner(Learner):
    """The screen's Alrao step is the library's: :func:`~alrao_cli.alrao.apply_alrao_loss`.

    Only the finiteness check differs from :func:`~alrao_cli.alrao.alrao_step`: the loop
    checks the running loss every few steps instead of syncing with the device each step.
    """

    module: AlraoModel

    def train_step(self, x: Tensor, y: Tensor) -> Tensor:
        loss = self.module.loss(x, y)
        apply_alrao_loss(self.module, self.optimizer, loss)
        return loss.mixture_loss

    def evaluate(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor | None]:
        if self.task == "regression":
            return self.module.mixture_nll(x, y), None
        log_mix = self.module(x)  # the mixture's log-probabilities
        return F.nll_loss(log_mix, y, reduction="none"), log_mix.argmax(-1)

    def posterior(self) -> tuple[float, ...]:
        return tuple(float(a) for a in self.module.switch.posterior)

    def evaluate_with_copies(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor | None, Tensor]:
        """One pass through the pre-classifier for the mixture's losses and the copies'."""
        prediction, copy_nll = self.module.predict_with_copies(x, y)
        if self.task == "regression":
            return self.module.mixture_nll_from(copy_nll), None, copy_nll
        return F.nll_loss(prediction, y, reduction="none"), prediction.argmax(-1), copy_nll

    def explain(self) -> dict[str, Any]:
        return {
            "posterior": list(self.posterior()),
            "copy_lrs": [float(r) for r in self.module.copy_lrs],
            "rate_summary": self.module.rate_summary(),
            "single_rate_parameters": self.module.single_rate_parameters(),
        }


@register_method("alrao")
class AlraoSGDMethod(TrainingMethod):
    """Alrao-SGD (Blier, Wolinski & Ollivier 2019, section 2): the screen's default method."""

    paper = "Blier, Wolinski & Ollivier 2019, Learning with random learning rates"
    label = "Alrao"
    baseline = False
    options_type = AlraoOptions

    def learner(self, model, spec, context):
        options: AlraoOptions = self.options(spec)
        wrapped = AlraoModel(
            model, context.num_classes, lr_min=options.lr_min, lr_max=options.lr_max,
            n_copies=options.copies, theta=options.theta, head=options.head, seed=context.seed,
            task=context.task, example_input=context.example_input,
        )
        optimizer = AlraoSGD(wrapped, momentum=options.momentum, weight_decay=options.weight_decay)
        return AlraoLearner(wrapped, optimizer, context.task)
