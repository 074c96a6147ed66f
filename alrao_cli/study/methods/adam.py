"""Adam at its default rate: the usual "no tuning" baseline, one run."""

from __future__ import annotations

import torch

from alrao_cli.study.methods import register_method
from alrao_cli.study.methods.base import TorchOptimizerLearner, TrainingMethod
from alrao_cli.study.spec import AdamOptions


@register_method("adam")
class AdamMethod(TrainingMethod):
    """``torch.optim.Adam`` at ``lr`` (1e-3, Kingma & Ba's default, unless the spec says otherwise)."""

    paper = "Kingma & Ba 2015, Adam"
    label = "Adam"
    default_lr = 1e-3
    options_type = AdamOptions

    def learner(self, model, spec, context):
        options: AdamOptions = self.options(spec)
        optimizer = torch.optim.Adam(
            model.parameters(), lr=self.rate(spec),
            weight_decay=options.weight_decay,
        )
        return TorchOptimizerLearner(model, optimizer, context.task)
