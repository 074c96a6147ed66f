"""Discriminative layer-wise rates: SGD whose rate is set per layer by its depth.

The layer-wise discussion (Smith, post #43, "Manual method 1"): a high rate for the lowest
layers, a low one for the highest, interpolated in between; post #45 gives the two ends
(0.02 / 0.001 for a 3-layer network on CIFAR-10, 2 / 0.1 for ResNet-50 on ImageNet: a
ratio of 20). The run's ``lr`` is the output layer's rate and is tuned over the grid,
like SGD's; the first layer gets ``ratio`` times it. Layers and their order are those of
:func:`~alrao_cli.optimizers.parameterised_modules`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

from alrao_cli.config.schema import DEFAULTS
from alrao_cli.errors import AlraoUserError
from alrao_cli.optimizers import (
    interpolated_param_groups,
    layerwise_param_groups,
    parameterised_modules,
)
from alrao_cli.study.methods import register_method
from alrao_cli.study.methods.base import TorchOptimizerLearner, TrainingMethod, rates_of
from alrao_cli.study.spec import MethodOptions


@dataclass(frozen=True, slots=True)
class LayerwiseOptions(MethodOptions):
    """How the rate changes with depth, and plain SGD's momentum and weight decay.

    ``ratio``: the first layer's rate over the last one's (20, Smith's 0.02/0.001 and
    2/0.1); above 1 the input layers are faster (Smith's direction), below 1 slower (the
    fine-tuning habit). ``spacing``: ``"linear"``, Smith's interpolation from the first
    layer's rate to the last's, or ``"geometric"``, a constant factor ``ratio**(1/(L-1))``
    from one layer to the next (the discriminative fine-tuning rule).
    ``momentum`` and ``weight_decay`` are the study's settings, as for the SGD it is
    compared with.
    """

    ratio: float = 20.0
    spacing: Literal["linear", "geometric"] = "linear"
    momentum: float = DEFAULTS.momentum
    weight_decay: float = DEFAULTS.weight_decay


class LayerwiseLearner(TorchOptimizerLearner):
    """SGD with one parameter group per layer; reports the output layer's rate and the spread."""

    def rates(self) -> dict[str, float]:
        groups = self.optimizer.param_groups
        return rates_of([group["lr"] for group in groups], headline=groups[-1]["lr"])

    def explain(self) -> dict[str, Any]:
        return {"rates": self.rates(), "layer_lrs": {group["layer"]: group["lr"] for group in self.optimizer.param_groups}}


@register_method("layerwise")
class LayerwiseMethod(TrainingMethod):
    """Layer-wise SGD: a rate per layer, ``ratio`` times faster at the input; tuned over the grid.

    Smith's "Manual method 1" (layer-wise discussion, post #43): rates interpolated from
    ``ratio * lr`` at the first layer to the grid's ``lr`` at the last
    (:func:`~alrao_cli.optimizers.interpolated_param_groups`), or geometrically spaced
    (:func:`~alrao_cli.optimizers.layerwise_param_groups`).
    """

    label = "Layer-wise SGD"
    paper = "Smith, layer-wise learning rates discussion (fast.ai forum, posts #43 and #45)"
    tuned_over_grid = True
    options_type = LayerwiseOptions

    def learner(self, model, spec, context):
        options: LayerwiseOptions = self.options(spec)
        if spec.lr is None:
            raise ValueError(f"{spec.name} is tuned over the grid: its spec needs the grid's rate as lr")
        if not options.ratio > 0:
            raise AlraoUserError(f"layerwise: ratio must be positive, got {options.ratio}", hint="20 is Smith's")
        if options.spacing == "linear":
            groups = interpolated_param_groups(model, input_lr=spec.lr * options.ratio, output_lr=spec.lr)
        elif options.spacing == "geometric":
            depth = len(parameterised_modules(model))
            groups = layerwise_param_groups(model, spec.lr, options.ratio ** (1 / max(depth - 1, 1)))
        else:
            raise AlraoUserError(
                f"layerwise: unknown spacing {options.spacing!r}", hint="spacing is 'linear' or 'geometric'"
            )
        optimizer = torch.optim.SGD(groups, lr=spec.lr, momentum=options.momentum, weight_decay=options.weight_decay)
        return LayerwiseLearner(model, optimizer, context.task)
