"""Hypergradient descent on the global rate (Baydin et al. 2018): SGD-HD and Adam-HD.

One run each: the rate starts at ``lr`` (``default_lr`` unless the spec gives one) and
learns itself online, one hypergradient step before every update. The optimizers are
:class:`~alrao_cli.optimizers.SGDHD` and :class:`~alrao_cli.optimizers.AdamHD`; the rate
lives in the optimizer's parameter group, so the checkpoint carries it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alrao_cli.optimizers import SGDHD, AdamHD
from alrao_cli.study.methods import register_method
from alrao_cli.study.methods.base import TorchOptimizerLearner, TrainingMethod
from alrao_cli.study.spec import MethodOptions

HD_PAPER = "Baydin et al. 2018, Online learning rate adaptation with hypergradient descent"


@dataclass(frozen=True, slots=True)
class SGDHDOptions(MethodOptions):
    """SGD-HD's hypergradient rate ``beta`` (Baydin et al. 2018, Algorithm 1; 1e-3 in their
    SGD-HD experiments). The initial rate ``alpha_0`` is the run's ``lr``."""

    beta: float = 1e-3


@dataclass(frozen=True, slots=True)
class AdamHDOptions(MethodOptions):
    """Adam-HD's hypergradient rate ``beta`` (Baydin et al. 2018, Algorithm 3; 1e-7 in their
    Adam-HD experiments). The initial rate is the run's ``lr``; Adam's ``betas`` and ``eps``
    keep Kingma & Ba's defaults."""

    beta: float = 1e-7


class HypergradientLearner(TorchOptimizerLearner):
    """A model trained by an optimizer whose single rate follows its hypergradient."""

    def explain(self) -> dict[str, Any]:
        return {"rates": self.rates()}


@register_method("sgd-hd")
class SGDHDMethod(TrainingMethod):
    """SGD-HD: plain SGD whose global rate is learned by hypergradient descent, one run.

    Baydin et al. 2018, Algorithm 1: ``h_t = -g_t . g_{t-1}``, ``alpha_t = alpha_{t-1} - beta h_t``,
    ``theta_t = theta_{t-1} - alpha_t g_t``. ``alpha_0 = 1e-3`` and ``beta = 1e-3`` are the
    paper's values for SGD-HD.
    """

    label = "SGD-HD"
    paper = HD_PAPER
    default_lr = 1e-3
    options_type = SGDHDOptions

    def learner(self, model, spec, context):
        options: SGDHDOptions = self.options(spec)
        lr = self.rate(spec)
        return HypergradientLearner(model, SGDHD(model.parameters(), lr=lr, hyper_lr=options.beta), context.task)


@register_method("adam-hd")
class AdamHDMethod(TrainingMethod):
    """Adam-HD: Adam whose global rate is learned by hypergradient descent, one run.

    Baydin et al. 2018, Algorithm 3: ``h_t = -g_t . d_{t-1}`` with ``d`` Adam's direction
    ``m_hat / (sqrt(v_hat) + eps)``, ``alpha_t = alpha_{t-1} - beta h_t``, then
    ``theta_t = theta_{t-1} - alpha_t d_t``. ``alpha_0 = 1e-3`` and ``beta = 1e-7`` are the
    paper's values for Adam-HD.
    """

    label = "Adam-HD"
    paper = HD_PAPER
    default_lr = 1e-3
    options_type = AdamHDOptions

    def learner(self, model, spec, context):
        options: AdamHDOptions = self.options(spec)
        lr = self.rate(spec)
        return HypergradientLearner(model, AdamHD(model.parameters(), lr=lr, hyper_lr=options.beta), context.task)
