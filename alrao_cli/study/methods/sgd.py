"""Plain SGD at one learning rate: the grid Alrao is measured against."""

from __future__ import annotations

import torch

from alrao_cli.study.methods import register_method
from alrao_cli.study.methods.base import TorchOptimizerLearner, TrainingMethod
from alrao_cli.study.spec import SGDOptions


@register_method("sgd")
class SGDMethod(TrainingMethod):
    """``torch.optim.SGD`` with the run's rate; run at every rate of ``--grid``, the best kept."""

    paper = "Robbins & Monro 1951"
    label = "SGD"
    tuned_over_grid = True
    options_type = SGDOptions

    def learner(self, model, spec, context):
        options: SGDOptions = self.options(spec)
        optimizer = torch.optim.SGD(
            model.parameters(), lr=spec.lr, momentum=options.momentum, weight_decay=options.weight_decay
        )
        return TorchOptimizerLearner(model, optimizer, context.task)
