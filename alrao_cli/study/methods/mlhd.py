"""Multi-level hypergradient descent: global, layer-wise and unit-wise rates, combined.

Jie et al., "Adaptive hierarchical hyper-gradient descent" (``shared/papers/
hierarchical-hypergradient.txt``), on SGD (``mlhd``) and on Adam (``mlhd-adam``): every
level's rate follows its own hypergradient (Sec. 2.1, Eq. (1)-(2), summed over the
parameters the rate is shared by), and each element moves with the convex combination
``gamma_u alpha_unit + gamma_l alpha_layer + gamma_g alpha_global`` whose weights are
learned too. :mod:`alrao_cli.optimizers.mlhd` implements it and says which steps the
shared text leaves to reconstruction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alrao_cli.optimizers import SGDMLHD, AdamMLHD
from alrao_cli.study.methods import register_method
from alrao_cli.study.methods.base import TorchOptimizerLearner, TrainingMethod
from alrao_cli.study.spec import MethodOptions

MLHD_PAPER = "Jie et al., Adaptive hierarchical hyper-gradient descent (Sec. 2.1)"


@dataclass(frozen=True, slots=True)
class MLHDOptions(MethodOptions):
    """The hypergradient rate ``beta`` of every level's rate, the rate ``combo_lr`` of the
    combination weights, and the weights' starting values (normalised to sum to one).

    ``beta = 1e-3`` is Baydin et al.'s SGD-HD value (the global level alone is SGD-HD);
    ``combo_lr = beta`` and equal starting weights are the implementation's choice, the
    shared paper text giving none (:class:`~alrao_cli.optimizers.SGDMLHD`).
    """

    beta: float = 1e-3
    combo_lr: float = 1e-3
    gamma_unit: float = 1.0
    gamma_layer: float = 1.0
    gamma_global: float = 1.0


@dataclass(frozen=True, slots=True)
class AdamMLHDOptions(MethodOptions):
    """As :class:`MLHDOptions`, at Baydin et al.'s Adam-HD scale: ``beta = combo_lr = 1e-7``
    (Adam's direction has unit scale, so its hypergradients are far larger than SGD's)."""

    beta: float = 1e-7
    combo_lr: float = 1e-7
    gamma_unit: float = 1.0
    gamma_layer: float = 1.0
    gamma_global: float = 1.0


class MLHDLearner(TorchOptimizerLearner):
    """A model trained with multi-level hypergradient rates; reports the combined rate."""

    optimizer: SGDMLHD | AdamMLHD

    def rates(self) -> dict[str, float]:
        """``lr``: the combined per-element rate ``alpha*`` averaged over every weight,
        ``lr_min``/``lr_max`` its extremes, ``lr_global``: the global level's rate."""
        total, count, low, high = 0.0, 0, float("inf"), float("-inf")
        groups = self.optimizer.rates()
        for group, rates in zip(self.optimizer.param_groups, groups):
            for p, tensor in zip(group["params"], rates.tensors):
                total += tensor.effective_mean * p.numel()
                count += p.numel()
                low, high = min(low, tensor.effective_min), max(high, tensor.effective_max)
        return {"lr": total / count, "lr_min": low, "lr_max": high, "lr_global": groups[0].global_lr}

    def explain(self) -> dict[str, Any]:
        gamma_unit, gamma_layer, gamma_global = self.optimizer.param_groups[0]["gammas"]
        return {
            "rates": self.rates(),
            "gammas": {"unit": gamma_unit, "layer": gamma_layer, "global": gamma_global},
        }


def _gammas(options: MLHDOptions | AdamMLHDOptions) -> tuple[float, float, float]:
    return (options.gamma_unit, options.gamma_layer, options.gamma_global)


@register_method("mlhd")
class MLHDMethod(TrainingMethod):
    """Multi-level hypergradient SGD: global, layer and unit rates learned and combined, one run.

    Jie et al., Sec. 2.1: ``theta -= alpha* g`` with
    ``alpha* = gamma_u alpha_u + gamma_l alpha_l + gamma_g alpha_g``; each ``alpha`` moves by
    ``beta`` times its hypergradient (Eq. (2) summed over the rate's parameters, Eq. (1)),
    each ``gamma`` by ``combo_lr`` times its own, then the ``gamma`` are renormalised.
    All levels start at the run's ``lr`` (1e-3, Baydin et al.'s SGD-HD value).
    """

    label = "SGD-MLHD"
    paper = MLHD_PAPER
    default_lr = 1e-3
    options_type = MLHDOptions

    def learner(self, model, spec, context):
        options: MLHDOptions = self.options(spec)
        optimizer = SGDMLHD(
            model.parameters(), lr=self.rate(spec),
            hyper_lr=options.beta, combo_lr=options.combo_lr, gammas=_gammas(options),
        )
        return MLHDLearner(model, optimizer, context.task)


@register_method("mlhd-adam")
class AdamMLHDMethod(TrainingMethod):
    """Multi-level hypergradient Adam: the same three levels on Adam's direction, one run.

    Jie et al., Sec. 2.1 with the update rule ``u`` of Adam: ``theta -= alpha* d`` with
    ``d = m_hat / (sqrt(v_hat) + eps)``, whose derivative with respect to a rate is ``-d``
    (as in Baydin et al.'s Adam-HD, Algorithm 3). Starts at the run's ``lr`` (1e-3).
    """

    label = "Adam-MLHD"
    paper = MLHD_PAPER
    default_lr = 1e-3
    options_type = AdamMLHDOptions

    def learner(self, model, spec, context):
        options: AdamMLHDOptions = self.options(spec)
        optimizer = AdamMLHD(
            model.parameters(), lr=self.rate(spec),
            hyper_lr=options.beta, combo_lr=options.combo_lr, gammas=_gammas(options),
        )
        return MLHDLearner(model, optimizer, context.task)
