"""The D-Adaptation family: step sizes set by an estimate ``d`` of the distance to the solution.

- ``dadapt-sgd`` and ``dadapt-adam``: Defazio & Mishchenko, "Learning-rate-free learning by
  D-Adaptation" (ICML 2023, arXiv:2301.07733), as their package ``dadaptation``
  implements them;
- ``prodigy``: Mishchenko & Defazio, "Prodigy: an expeditiously adaptive parameter-free
  learner" (ICML 2024, arXiv:2306.06101), "a modification of D-Adaptation" with a faster
  growing estimate, in its Adam variant, as their package ``prodigyopt`` implements it.

Each is one run. The packages are optional (``pip install "alrao-cli[methods]"``) and are
imported only when a learner is built. ``d`` and everything else they adapt live in the
optimizer's parameter groups and state, so the checkpoint carries them.
"""

from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass
from typing import Any

from alrao_cli.config.schema import DEFAULTS
from alrao_cli.study.methods import register_method
from alrao_cli.study.methods.base import (
    TorchOptimizerLearner,
    TrainingMethod,
    import_package,
)
from alrao_cli.study.spec import MethodOptions

DADAPT_PAPER = "Defazio & Mishchenko 2023, Learning-rate-free learning by D-Adaptation"
PRODIGY_PAPER = "Mishchenko & Defazio 2024, Prodigy: an expeditiously adaptive parameter-free learner"


def _growth(growth_rate: float | None) -> float:
    """The packages' ``growth_rate``: ``inf`` for none (kept out of the options, which are saved as JSON)."""
    return math.inf if growth_rate is None else growth_rate


@dataclass(frozen=True, slots=True)
class DAdaptSGDOptions(MethodOptions):
    """D-Adapt SGD's, at the defaults of ``dadaptation.DAdaptSGD`` (3.2).

    ``lr_factor`` is the package's ``lr``, a multiplier of the adapted step ("leave it at
    1"); ``d0`` the initial distance estimate; ``growth_rate`` a bound on ``d``'s growth per
    step (None: unbounded, the package's ``inf``); ``momentum`` and ``weight_decay`` are
    the study's settings (0 by default, as the package's), shared with plain SGD.
    """

    lr_factor: float = 1.0
    d0: float = 1e-6
    growth_rate: float | None = None
    momentum: float = DEFAULTS.momentum
    weight_decay: float = DEFAULTS.weight_decay


@dataclass(frozen=True, slots=True)
class DAdaptAdamOptions(MethodOptions):
    """D-Adapt Adam's, at the defaults of ``dadaptation.DAdaptAdam`` (3.2): ``lr_factor``,
    ``d0`` and ``growth_rate`` as for D-Adapt SGD; L2 ``weight_decay`` (the study's
    setting) added to the gradient unless ``decouple`` (AdamW-style, off by default);
    Adam's bias correction off, as in the package."""

    lr_factor: float = 1.0
    d0: float = 1e-6
    growth_rate: float | None = None
    weight_decay: float = DEFAULTS.weight_decay
    decouple: bool = False
    use_bias_correction: bool = False


@dataclass(frozen=True, slots=True)
class ProdigyOptions(MethodOptions):
    """Prodigy's, at the defaults of ``prodigyopt.Prodigy`` (1.1): ``lr_factor``, ``d0`` and
    ``growth_rate`` as for D-Adaptation; ``d_coef`` scales the estimate ``d_hat`` (the knob
    its authors tune first); ``weight_decay`` (the study's setting) is decoupled,
    AdamW-style, as the package does by default; bias correction and ``safeguard_warmup``
    are off, as there."""

    lr_factor: float = 1.0
    d_coef: float = 1.0
    d0: float = 1e-6
    growth_rate: float | None = None
    weight_decay: float = DEFAULTS.weight_decay
    use_bias_correction: bool = False
    safeguard_warmup: bool = False


class DAdaptedLearner(TorchOptimizerLearner):
    """A model trained by an optimizer of the family; ``d`` is in every parameter group."""

    def rates(self) -> dict[str, float]:
        """``lr``: the step size ``d * lr`` that multiplies Adam's direction (times Adam's
        bias correction where it is on), as the packages compute it for the next step."""
        group = self.optimizer.param_groups[0]
        rate = group["d"] * group["lr"]
        if group.get("use_bias_correction"):
            beta1, beta2 = group["betas"]
            k = group["k"]
            rate *= math.sqrt(1 - beta2 ** (k + 1)) / (1 - beta1 ** (k + 1))
        return {"lr": rate}

    def explain(self) -> dict[str, Any]:
        return {"rates": self.rates(), "d": self.optimizer.param_groups[0]["d"]}


class DAdaptSGDLearner(DAdaptedLearner):
    """D-Adapt SGD: its step on the gradient is ``d * lr / ||g_0||``."""

    def rates(self) -> dict[str, float]:
        """``lr``: ``d * lr / ||g_0||``, the rate the next step multiplies the gradient by
        (the package's ``dlr``); empty before the first step, which measures ``||g_0||``."""
        group = self.optimizer.param_groups[0]
        if not group.get("g0_norm"):
            return {}
        return {"lr": group["d"] * group["lr"] / group["g0_norm"]}


@register_method("dadapt-sgd")
class DAdaptSGDMethod(TrainingMethod):
    """D-Adapt SGD: SGD whose step size is learned from the distance travelled; one run.

    Defazio & Mishchenko 2023, SGD with D-Adaptation as ``dadaptation.DAdaptSGD`` runs it:
    ``lambda = d lr / ||g_0||``, ``s += lambda g``, ``r += lambda <g, s_prev>``,
    ``d = max(d, 2 r / ||s||)``, ``z = x_0 - s``, ``x = momentum x + (1 - momentum) z``.
    """

    label = "D-Adapt SGD"
    paper = DADAPT_PAPER
    options_type = DAdaptSGDOptions

    def learner(self, model, spec, context):
        options: DAdaptSGDOptions = self.options(spec)
        dadaptation = import_package(self.name, "dadaptation")
        optimizer = dadaptation.DAdaptSGD(
            model.parameters(), lr=options.lr_factor, momentum=options.momentum, weight_decay=options.weight_decay,
            d0=options.d0, growth_rate=_growth(options.growth_rate),
        )
        return DAdaptSGDLearner(model, optimizer, context.task)


@register_method("dadapt-adam")
class DAdaptAdamMethod(TrainingMethod):
    """D-Adapt Adam: Adam whose step size is learned from the distance travelled; one run.

    Defazio & Mishchenko 2023, Adam with D-Adaptation as ``dadaptation.DAdaptAdam`` runs
    it: ``lambda = d lr``, ``m = beta1 m + lambda (1-beta1) g``, ``v = beta2 v + (1-beta2) g^2``,
    ``s = sqrt(beta2) s + lambda (1-sqrt(beta2)) g``, ``r`` the same average of
    ``lambda <g, s_prev / (sqrt(v_prev) + eps)>``, ``d = max(d, r / ((1-sqrt(beta2)) ||s||_1))``,
    ``x -= m / (sqrt(v) + eps)``.
    """

    label = "D-Adapt Adam"
    paper = DADAPT_PAPER
    options_type = DAdaptAdamOptions

    def learner(self, model, spec, context):
        options: DAdaptAdamOptions = self.options(spec)
        dadaptation = import_package(self.name, "dadaptation")
        with contextlib.redirect_stdout(io.StringIO()):  # it prints when decoupled: stdout is for --json
            optimizer = dadaptation.DAdaptAdam(
                model.parameters(), lr=options.lr_factor, weight_decay=options.weight_decay,
                decouple=options.decouple, use_bias_correction=options.use_bias_correction, d0=options.d0,
                growth_rate=_growth(options.growth_rate),
            )
        return DAdaptedLearner(model, optimizer, context.task)


@register_method("prodigy")
class ProdigyMethod(TrainingMethod):
    """Prodigy: Adam whose step size estimates the distance to the solution; one run.

    Mishchenko & Defazio 2024, the Adam variant as ``prodigyopt.Prodigy`` runs it:
    ``m = beta1 m + (1-beta1) d g``, ``v = beta2 v + (1-beta2) d^2 g^2``,
    ``r = beta3 r + lr d^2 <g, x_0 - x>``, ``s = beta3 s + lr d^2 g``,
    ``d = max(d, d_coef r / ||s||_1)``, ``x -= lr d m / (sqrt(v) + d eps)``, with
    ``beta3 = sqrt(beta2)``.
    """

    label = "Prodigy"
    paper = PRODIGY_PAPER
    options_type = ProdigyOptions

    def learner(self, model, spec, context):
        options: ProdigyOptions = self.options(spec)
        prodigyopt = import_package(self.name, "prodigyopt")
        with contextlib.redirect_stdout(io.StringIO()):  # it prints about decoupled decay: stdout is for --json
            optimizer = prodigyopt.Prodigy(
                model.parameters(), lr=options.lr_factor, d_coef=options.d_coef, d0=options.d0,
                growth_rate=_growth(options.growth_rate), weight_decay=options.weight_decay, decouple=True,
                use_bias_correction=options.use_bias_correction, safeguard_warmup=options.safeguard_warmup,
            )
        return DAdaptedLearner(model, optimizer, context.task)
