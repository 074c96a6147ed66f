"""LARS and LARC: SGD with momentum and a trust-ratio rate per layer (You, Gitman & Ginsburg 2017).

The layer-wise discussion's "Baseline 2: NVIDIA's LARS or revised version called LARC".
Both wrap :class:`~alrao_cli.optimizers.LARC`: ``lars`` scales the global rate by each
tensor's trust ratio ``eta ||w|| / (||g|| + wd ||w||)``, ``larc`` clips the global rate
at it. Neither paper gives a global rate that fits any task (LARS tunes its base rate per
batch size; LARC clips the rate the user tuned for SGD), so both are tuned over the
grid's rates, like SGD.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from alrao_cli.config.schema import DEFAULTS
from alrao_cli.optimizers import LARC
from alrao_cli.study.methods import register_method
from alrao_cli.study.methods.base import TorchOptimizerLearner, TrainingMethod, rates_of
from alrao_cli.study.spec import MethodOptions

LARS_PAPER = "You, Gitman & Ginsburg 2017, Large batch training of convolutional networks (Algorithm 1)"


@dataclass(frozen=True, slots=True)
class LARSOptions(MethodOptions):
    """LARS's: the trust coefficient ``eta`` (1e-3, You et al. 2017), the momentum of their
    experiments (0.9) and L2 weight decay (the study's setting).

    The momentum is named ``sgd_momentum``, not ``momentum``, so that the study setting
    ``momentum`` (0 by default, plain SGD's) does not replace the paper's value.
    """

    trust_coefficient: float = 1e-3
    sgd_momentum: float = 0.9
    weight_decay: float = DEFAULTS.weight_decay


@dataclass(frozen=True, slots=True)
class LARCOptions(MethodOptions):
    """LARC's: the trust coefficient (0.02, the default of NVIDIA's LARC in apex,
    ``apex/parallel/LARC.py``), momentum 0.9 and L2 weight decay, as :class:`LARSOptions`."""

    trust_coefficient: float = 0.02
    sgd_momentum: float = 0.9
    weight_decay: float = DEFAULTS.weight_decay


class LARCLearner(TorchOptimizerLearner):
    """A model trained by LARS or LARC; reports the per-tensor local rates."""

    optimizer: LARC

    def rates(self) -> dict[str, float]:
        """``lr``: the mean over tensors of the local rate of the last step (``lr_min`` and
        ``lr_max`` its extremes); the global rate before the first step."""
        local = [rate for group in self.optimizer.local_lrs() for rate in group if not math.isnan(rate)]
        if not local:
            return super().rates()
        return rates_of(local)

    def explain(self) -> dict[str, Any]:
        return {"rates": self.rates(), "global_lr": self.optimizer.param_groups[0]["lr"]}


def _larc_learner(model, spec, context, options: LARSOptions | LARCOptions, mode: str) -> LARCLearner:
    if spec.lr is None:
        raise ValueError(f"{spec.name} is tuned over the grid: its spec needs the grid's rate as lr")
    optimizer = LARC(
        model.parameters(), lr=spec.lr, momentum=options.sgd_momentum, weight_decay=options.weight_decay,
        trust_coefficient=options.trust_coefficient, mode=mode,
    )
    return LARCLearner(model, optimizer, context.task)


@register_method("lars")
class LARSMethod(TrainingMethod):
    """LARS: SGD with momentum, each layer's rate scaled by its trust ratio; tuned over the grid.

    You et al. 2017, Algorithm 1: local rate ``lr * eta * ||w|| / (||g|| + wd ||w||)``, then
    SGD with momentum (``mode="scale"`` of :class:`~alrao_cli.optimizers.LARC`). The run's
    ``lr`` is the paper's global (base) rate, taken from the grid.
    """

    label = "LARS"
    paper = LARS_PAPER
    tuned_over_grid = True
    options_type = LARSOptions

    def learner(self, model, spec, context):
        return _larc_learner(model, spec, context, self.options(spec), "scale")


@register_method("larc")
class LARCMethod(TrainingMethod):
    """LARC: SGD with momentum whose rate each layer's trust ratio may only lower; tuned over the grid.

    NVIDIA's revision of LARS (apex ``LARC``, ``clip=True``): local rate
    ``min(eta * ||w|| / (||g|| + wd ||w||), lr)`` (``mode="clip"`` of
    :class:`~alrao_cli.optimizers.LARC`), so the grid's rate is a cap that layers with large
    gradients relative to their weights stay under.
    """

    label = "LARC"
    paper = LARS_PAPER + "; NVIDIA apex LARC (clipping)"
    tuned_over_grid = True
    options_type = LARCOptions

    def learner(self, model, spec, context):
        return _larc_learner(model, spec, context, self.options(spec), "clip")
