"""DoG and L-DoG: SGD whose step is the distance travelled over the root of the summed
squared gradients, evaluated at its polynomially averaged iterate (``dog-optimizer``).

Ivgi, Hinder & Carmon, "DoG is SGD's best friend: a parameter-free dynamic step size
schedule" (ICML 2023, arXiv:2302.12022), as the authors' package ``dog`` implements it.
The package's docstrings insist that iterate averaging is crucial, since DoG has no decay
of its own: both methods keep ``dog.PolynomialDecayAverager`` (Shamir & Zhang 2013's
polynomial-decay average, ``gamma = 8``) beside the trained model, step it after every
update, and evaluate the average. The checkpoint holds the model, DoG's state and the
averager's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from alrao_cli.config.schema import DEFAULTS
from alrao_cli.study.methods import register_method
from alrao_cli.study.methods.base import (
    TorchOptimizerLearner,
    TrainingMethod,
    import_package,
    rates_of,
)
from alrao_cli.study.spec import MethodOptions

DOG_PAPER = "Ivgi, Hinder & Carmon 2023, DoG is SGD's best friend: a parameter-free dynamic step size schedule"
REPS_REL = 1e-6  # the package's suggested r_eps / (1 + ||x_0||)...
REPS_REL_BATCH_NORM = 1e-4  # ...and its suggestion for a model with batch normalization


@dataclass(frozen=True, slots=True)
class DoGOptions(MethodOptions):
    """DoG's and L-DoG's, at the package's (``dog`` 1.0.3) defaults and advice.

    ``reps_rel``: the first step's distance, relative to ``1 + ||x_0||`` (the paper's
    ``r_eps``); None follows the package's advice, 1e-6, or 1e-4 when the model has batch
    normalization. ``weight_decay`` is the study's setting (added to the gradient, as the
    package does); ``averaging_gamma`` is the averager's ``gamma`` (8, the package's).
    """

    reps_rel: float | None = None
    weight_decay: float = DEFAULTS.weight_decay
    averaging_gamma: float = 8.0


class DoGLearner(TorchOptimizerLearner):
    """Trains ``module`` with DoG or L-DoG, and evaluates the averaged copy of it."""

    def __init__(self, module: nn.Module, optimizer, task: str, averager) -> None:
        super().__init__(module, optimizer, task)
        self.averager = averager

    def train_step(self, x: Tensor, y: Tensor) -> Tensor:
        loss = super().train_step(x, y)
        self.averager.step()
        return loss

    def evaluate(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor | None]:
        """The averaged model's losses and labels, in the mode the loop put ``module`` in."""
        averaged = self.averager.averaged_model
        averaged.train(self.module.training)
        scores = averaged(x)
        labels = None if self.task == "regression" else scores.argmax(-1)
        return self._example_losses(scores, y), labels

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "averager": self.averager.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        # DoG's loader moves its distance and gradient sums to the CPU; in a run that was
        # never interrupted they live beside the parameters, and updating them in place
        # there from a GPU's gradients needs them back.
        for group in self.optimizer.param_groups:
            device = group["params"][0].device
            for key in ("rbar", "G"):
                if isinstance(group.get(key), Tensor):
                    group[key] = group[key].to(device)
            if "eta" in group:
                group["eta"] = [eta.to(device) if isinstance(eta, Tensor) else eta for eta in group["eta"]]
        self.averager.load_state_dict(state["averager"])

    def rates(self) -> dict[str, float]:
        """``lr``: DoG's step ``eta`` (L-DoG: its mean over tensors, with ``lr_min`` and
        ``lr_max``); empty before the first step, which sets it."""
        etas = [float(eta) for group in self.optimizer.param_groups for eta in group.get("eta", ())]
        return rates_of(etas)

    def explain(self) -> dict[str, Any]:
        return {"rates": self.rates(), "averaged_steps": self.averager.t - 1}


def _has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _dog_learner(method: TrainingMethod, model: nn.Module, spec, context, layer_wise: bool) -> DoGLearner:
    options: DoGOptions = method.options(spec)
    dog = import_package(method.name, "dog", distribution="dog-optimizer")
    reps_rel = options.reps_rel
    if reps_rel is None:
        reps_rel = REPS_REL_BATCH_NORM if _has_batch_norm(model) else REPS_REL
    optimizer_type = dog.LDoG if layer_wise else dog.DoG
    optimizer = optimizer_type(model.parameters(), reps_rel=reps_rel, weight_decay=options.weight_decay)
    averager = dog.PolynomialDecayAverager(model, gamma=options.averaging_gamma)
    return DoGLearner(model, optimizer, context.task, averager)


@register_method("dog")
class DoGMethod(TrainingMethod):
    """DoG: SGD stepping by the distance from the start over the root of the summed squared gradients; one run.

    Ivgi et al. 2023, the DoG step size: ``eta_t = max_{i<=t} ||x_i - x_0|| / sqrt(sum_{i<=t} ||g_i||^2)``
    (with ``r_eps = reps_rel (1 + ||x_0||)`` for the first distance), ``x_{t+1} = x_t - eta_t g_t``,
    one ``eta`` for the whole model; evaluated at the polynomial-decay average of the
    iterates.
    """

    label = "DoG"
    paper = DOG_PAPER
    options_type = DoGOptions

    def learner(self, model, spec, context):
        return _dog_learner(self, model, spec, context, layer_wise=False)


@register_method("ldog")
class LDoGMethod(TrainingMethod):
    """L-DoG: DoG's step size computed for each tensor (layer) separately; one run.

    Ivgi et al. 2023, layer-wise DoG: the same ``eta_t`` with the distance and the gradient
    sums of each parameter tensor alone; evaluated at the polynomial-decay average of the
    iterates.
    """

    label = "L-DoG"
    paper = DOG_PAPER
    options_type = DoGOptions

    def learner(self, model, spec, context):
        return _dog_learner(self, model, spec, context, layer_wise=True)
