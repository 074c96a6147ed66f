"""AlraoModel: a user's network with random per-feature rates and N output copies.

Reads like section 2 of the paper:

- the *pre-classifier* is the user's model with its output layer taken out: it maps an
  input to features ``z``; each of its features drew a rate ``logU(lr_min, lr_max)``;
- the *copies* are N output layers with rates log-spaced over the same range;
- the *mixture* ``p(y|x) = sum_j a_j p_j(y|x)`` weights the copies with the switch
  posterior ``a``;
- one backward pass trains everything: the mixture's loss trains the pre-classifier,
  each copy's own loss trains that copy;
- after the step, the switch sees how well each copy predicted the minibatch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parameter import is_lazy

from alrao_cli.alrao.head import (
    CopiesHead,
    FeatureTap,
    copy_learning_rates,
    find_head,
    head_candidates,
    probe_forward,
    replace_submodule,
    vanishing_if_not_finite,
)
from alrao_cli.alrao.lr_sampling import Granularity, sample_feature_lrs
from alrao_cli.alrao.switch import Switch
from alrao_cli.errors import AlraoUserError

Task = Literal["classification", "regression"]


@dataclass(frozen=True, slots=True)
class AlraoLoss:
    """What one minibatch gives: the loss to backpropagate and what to report.

    ``backward_loss`` has the mixture's loss as its value and Alrao's gradient: the
    mixture's loss trains the pre-classifier, each copy's own loss trains that copy.
    ``mixture_loss`` (the same number, to report and to check for divergence) and
    ``copy_log_likelihoods`` (``[N]``, each copy's mean log-likelihood, for
    :meth:`AlraoModel.update_switch`) are detached.
    """

    backward_loss: Tensor
    mixture_loss: Tensor
    copy_log_likelihoods: Tensor


class AlraoModel(nn.Module):
    """Wrap a classifier (or regressor) for Alrao training, without rewriting it.

    ``model`` is any ``nn.Module`` whose output layer is an ``nn.Linear`` with
    ``num_classes`` outputs, returned as is by ``forward``. It is found automatically or
    named with ``head="fc"`` / ``head="classifier.6"``. When the model has several Linear
    layers with ``num_classes`` outputs, ``example_input`` (a batch the model accepts)
    lets one forward pass find the one whose output the model returns; without it, the
    last registered one is taken. The model is modified in place: its output layer is
    replaced.

    Rates are drawn here, once, from ``seed``, and kept as buffers: they are part of the
    state dict and follow ``.to(device)``. Train with :class:`~alrao_cli.AlraoSGD`
    (or :class:`~alrao_cli.AlraoAdam`) and :func:`~alrao_cli.alrao_step`.

    ``forward(x)`` predicts: for classification the mixture's log-probabilities
    ``[B, K]`` (use ``nll_loss`` on them), for regression the posterior-weighted mean.
    Regression uses a unit-variance Gaussian likelihood for the switch and the mixture.

    Lazy layers (``nn.LazyLinear``...) need their sizes before rates can be drawn for
    them: give ``example_input``, or run one forward pass before wrapping the model.
    """

    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        lr_min: float = 1e-5,
        lr_max: float = 10.0,
        n_copies: int = 10,
        theta: float = 0.999,
        head: str | None = None,
        seed: int = 0,
        per: Granularity = "feature",
        task: Task = "classification",
        example_input: Tensor | None = None,
    ) -> None:
        super().__init__()
        if not 0 < lr_min < lr_max:
            raise ValueError(f"need 0 < lr_min < lr_max, got {lr_min} and {lr_max}")
        if n_copies < 1:
            raise ValueError(f"n_copies must be at least 1, got {n_copies}")
        if task not in ("classification", "regression"):
            raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
        self.task: Task = task
        self.num_classes = num_classes
        self.lr_min, self.lr_max = lr_min, lr_max
        _size_lazy_layers(model, example_input)
        self.head_name = find_head(model, num_classes, head, example_input)
        guessed_among = () if head is not None or example_input is not None else head_candidates(model, num_classes)
        others = tuple(name for name in guessed_among if name != self.head_name)
        old_head = replace_submodule(model, self.head_name, FeatureTap(self.head_name, others))
        self.pre_classifier = model
        generator = torch.Generator().manual_seed(seed)
        self.copies = CopiesHead(old_head.in_features, num_classes, n_copies, generator)
        self.copies.to(device=old_head.weight.device, dtype=old_head.weight.dtype)
        self.switch = Switch(n_copies, theta)

        feature_rates = sample_feature_lrs(self.pre_classifier, lr_min, lr_max, seed=seed, per=per)
        self.rate_features: dict[str, str] = {e.name: e.feature for e in feature_rates}
        copy_lrs = copy_learning_rates(lr_min, lr_max, n_copies)
        self.register_buffer("copy_lrs", copy_lrs)
        self._rate_names: dict[str, str] = {}  # parameter name -> buffer name
        self.rates = nn.Module()
        for entry in feature_rates:
            self._add_rate("pre_classifier." + entry.name, entry.rate)
        self._add_rate("copies.weight", copy_lrs.view(-1, 1, 1).clone())
        self._add_rate("copies.bias", copy_lrs.view(-1, 1).clone())
        self.to(old_head.weight.device)

    def _add_rate(self, param_name: str, rate: Tensor) -> None:
        buffer_name = param_name.replace(".", "__")
        self.rates.register_buffer(buffer_name, rate)
        self._rate_names[param_name] = buffer_name

    @property
    def n_copies(self) -> int:
        return self.copies.n_copies

    def rate_of(self, param_name: str) -> Tensor:
        """The rate tensor of a parameter, by its name in this module."""
        return self.rates.get_buffer(self._rate_names[param_name])

    def parameters_with_rates(self) -> list[tuple[nn.Parameter, str]]:
        """Every parameter that has a rate, with the name of its rate buffer (the optimizer's input).

        Parameters frozen when the model was built have none; those frozen later keep theirs.
        """
        named = dict(self.named_parameters())
        return [(named[p], b) for p, b in self._rate_names.items()]

    # -- the forward pass -------------------------------------------------------------
    def features(self, x: Tensor) -> Tensor:
        """The pre-classifier's output ``z``, ``[B, d]``."""
        tap: FeatureTap = self.pre_classifier.get_submodule(self.head_name)
        return tap.features(self.pre_classifier, x)

    def forward(self, x: Tensor) -> Tensor:
        return self._mixture(self.copies.class_major_outputs(self.features(x)))

    def _mixture(self, outputs: Tensor) -> Tensor:
        """The mixture's prediction from the copies' outputs ``[B, K, N]``."""
        log_a = self.switch.log_posterior.view(1, 1, -1)
        if self.task == "regression":  # the mixture's mean, over the copies that have not diverged
            alive = torch.isfinite(outputs).all(dim=1, keepdim=True)
            weights = log_a.exp() * alive
            return (torch.where(alive, outputs, 0.0) * weights).sum(dim=2) / weights.sum(dim=2)
        log_p = vanishing_if_not_finite(F.log_softmax(outputs, dim=1))  # a diverged copy: p = 0
        return torch.logsumexp(log_a + log_p, dim=2)

    def loss(self, x: Tensor, y: Tensor) -> AlraoLoss:
        """The single-backward Alrao loss of one minibatch (predict with the current posterior)."""
        backward_loss, mixture_loss, copy_log_lik = self.copies.losses(
            self.features(x), y, self.switch.log_posterior, regression=self.task == "regression"
        )
        return AlraoLoss(backward_loss, mixture_loss, copy_log_lik)

    @torch.no_grad()
    def mixture_nll(self, x: Tensor, y: Tensor) -> Tensor:
        """Each example's ``-log p_mix(y|x)``, ``[B]``: the validation loss that ranks models."""
        return self.mixture_nll_from(-self.copies.log_likelihoods(self.features(x), y, regression=self.task == "regression"))

    def mixture_nll_from(self, copy_nll: Tensor) -> Tensor:
        """``-log p_mix(y|x)``, ``[B]``, from each copy's ``-log p_i(y|x)``, ``[B, N]``."""
        log_a = self.switch.log_posterior.to(copy_nll.dtype).view(1, -1)
        return -torch.logsumexp(log_a - copy_nll, dim=1)

    @torch.no_grad()
    def predict_with_copies(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """The mixture's prediction (as :meth:`forward`) and each example's ``-log p_i(y|x)``
        under each copy alone, ``[B, N]`` (a diverged copy's is infinite), from one pass
        through the pre-classifier: validation reads both."""
        z = self.features(x)
        regression = self.task == "regression"
        return self._mixture(self.copies.class_major_outputs(z)), -self.copies.log_likelihoods(z, y, regression=regression)

    def update_switch(self, copy_log_likelihoods: Tensor) -> None:
        """Tell the switch how well each copy predicted the last minibatch."""
        self.switch.update(copy_log_likelihoods)

    # -- what a run can explain ---------------------------------------------------------
    def selected_lr(self) -> float:
        """The rate of the copy the switch currently favours."""
        return float(self.copy_lrs[int(self.switch.posterior.argmax())])

    def rate_summary(self) -> dict[str, Any]:
        """Per parameter: the feature kind, how many rates, and their range (JSON-able)."""
        summary: dict[str, Any] = {}
        for name, feature in self.rate_features.items():
            rate = self.rate_of("pre_classifier." + name).flatten()
            summary[name] = {
                "feature": feature,
                "count": int(rate.numel()),
                "min": float(rate.min()),
                "median": float(rate.median()),
                "max": float(rate.max()),
            }
        return summary

    def single_rate_parameters(self) -> list[str]:
        """Parameters that fell back to one rate for the whole tensor."""
        return [name for name, feature in self.rate_features.items() if feature == "tensor"]


def lazy_parameters_text(model: nn.Module) -> str:
    """The parameters of lazy layers (``nn.LazyLinear``...) with no size yet, as a few
    names for a message ("1.weight, 1.bias"); empty when there are none."""
    lazy = [name for name, p in model.named_parameters() if is_lazy(p)]
    return ", ".join(lazy[:3]) + (f" and {len(lazy) - 3} more" if len(lazy) > 3 else "")


def _size_lazy_layers(model: nn.Module, example_input: Tensor | None) -> None:
    """Give lazy layers their sizes with one forward pass on ``example_input``; without one, say what to do."""
    lazy = lazy_parameters_text(model)
    if not lazy:
        return
    if example_input is None:
        raise AlraoUserError(
            f"the model has lazy layers with no size yet ({lazy}): Alrao draws a rate per feature, "
            "so it needs their sizes",
            hint="give AlraoModel an example_input= batch, or run one forward pass before wrapping the model",
        )
    probe_forward(model, example_input)
