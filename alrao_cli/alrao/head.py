"""The output layer: finding it in a user's model, and its N copies.

Alrao replaces the classifier layer by N copies with log-spaced rates (paper, section 2).
The copies are stored as one weight ``[N, K, d]`` so that all of them run as a single
matrix product, and one autograd function computes their outputs once while routing the
gradients of the two losses apart: the mixture's gradient goes to the features ``z`` only
(it trains the pre-classifier), each copy's own gradient goes to its weights only (it
trains the copy as if it were alone).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from alrao_cli.errors import AlraoUserError

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def find_head(model: nn.Module, num_classes: int, head: str | None = None) -> str:
    """Return the qualified name of the model's output layer.

    With ``head`` given, check that it names an ``nn.Linear``. Otherwise take the last
    registered ``nn.Linear`` with ``num_classes`` outputs: torchvision's classifiers and
    most hand-written models register their head last. Whether its output really is the
    model's output is checked on the first forward pass (:class:`FeatureTap`).
    """
    modules = dict(model.named_modules())
    if head is not None:
        if head not in modules:
            linears = [n for n, m in modules.items() if isinstance(m, nn.Linear)]
            raise AlraoUserError(
                f"the model has no submodule named {head!r}",
                hint=f"its nn.Linear layers are: {', '.join(linears) or 'none'}",
            )
        if not isinstance(modules[head], nn.Linear):
            raise AlraoUserError(
                f"the output layer {head!r} is a {type(modules[head]).__name__}, not an nn.Linear",
                hint="Alrao replaces a Linear output layer; name the last nn.Linear of the model",
            )
        return head
    candidates = [
        name
        for name, m in modules.items()
        if isinstance(m, nn.Linear) and m.out_features == num_classes and name
    ]
    if not candidates:
        raise AlraoUserError(
            f"no output layer found: the model has no nn.Linear with {num_classes} outputs "
            f"({type(model).__name__})",
            hint="end the model with nn.Linear(d, num_classes), or name the layer with head=",
        )
    return candidates[-1]


class FeatureTap(nn.Module):
    """Stands where the output layer was and hands its input (the features) back.

    The wrapped model then returns the features ``z`` instead of the logits. If the
    model does something to the head's output before returning it (a softmax, a reshape),
    the tensor it returns is not ``z`` and :meth:`take` says so clearly.
    """

    def __init__(self, head_name: str) -> None:
        super().__init__()
        self.head_name = head_name
        self._features: Tensor | None = None

    def forward(self, z: Tensor) -> Tensor:
        self._features = z
        return z

    def take(self, model_output: object) -> Tensor:
        z, self._features = self._features, None
        if z is None:
            raise AlraoUserError(
                f"the output layer {self.head_name!r} was never called in forward()",
                hint="name the layer that produces the model's output with head=",
            )
        if model_output is not z:
            raise AlraoUserError(
                f"the model transforms the output of {self.head_name!r} before returning it",
                hint="return the Linear layer's output as is (no softmax or reshape after it), "
                "or name the right layer with head=",
            )
        if z.dim() != 2:
            raise AlraoUserError(
                f"the output layer {self.head_name!r} receives features of shape "
                f"{tuple(z.shape)}; Alrao expects [batch, features]",
                hint="flatten or pool the features before the output layer",
            )
        return z


def replace_submodule(model: nn.Module, name: str, new: nn.Module) -> nn.Module:
    """Put ``new`` where submodule ``name`` is and return the old one."""
    parent_name, _, child_name = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = getattr(parent, child_name)
    setattr(parent, child_name, new)
    return old


def copy_learning_rates(lr_min: float, lr_max: float, n_copies: int) -> Tensor:
    """Rates of the copies: log-spaced over ``[lr_min, lr_max]``, both ends included.

    A single copy gets the geometric middle of the range.
    """
    if n_copies == 1:
        return torch.tensor([math.sqrt(lr_min * lr_max)], dtype=torch.float32)
    exponents = torch.linspace(math.log(lr_min), math.log(lr_max), n_copies, dtype=torch.float64)
    return exponents.exp().float()


class _CopyLogLikelihoods(torch.autograd.Function):
    """Each copy's log-likelihood of each example, computed once, returned twice.

    Forward: ``out = z W^T + b`` for all copies in one product, then ``log p_j(y_b|x_b)``
    (log-softmax at the label, or a unit-variance Gaussian for regression), ``[B, N]``.
    The two outputs hold the same values but route their gradients apart: the first's
    to ``z`` only (the mixture trains the pre-classifier), the second's to ``W`` and ``b``
    only (each copy's own loss trains that copy). This equals two linear maps, one with
    detached weights and one with a detached input, for the price of one forward product,
    and its backward needs no log-softmax backward and no gather.
    """

    @staticmethod
    def forward(ctx, z, weight, bias, target, n_copies: int, regression: bool):  # noqa: D102
        batch = z.shape[0]
        out = F.linear(z, weight, bias).view(batch, n_copies, -1)  # [B, N, K]
        if regression:
            residual = out - target.view(batch, 1, -1).to(out.dtype)
            log_lik = -0.5 * residual.pow(2).sum(-1) - _HALF_LOG_2PI * out.shape[-1]
            ctx.save_for_backward(z, weight, residual)
        else:
            log_p = F.log_softmax(out, dim=-1)
            index = target.view(batch, 1, 1).expand(batch, n_copies, 1)
            log_lik = log_p.gather(2, index).squeeze(2)
            ctx.save_for_backward(z, weight, log_p, index)
        ctx.regression = regression
        return log_lik, log_lik.clone()

    @staticmethod
    def backward(ctx, grad_to_input, grad_to_weight):  # noqa: D102
        if ctx.regression:
            z, weight, residual = ctx.saved_tensors
            d_out = -residual  # d log_lik / d out
        else:
            z, weight, log_p, index = ctx.saved_tensors
            d_out = None  # one-hot(y) - softmax, formed per path below
        flat = z.shape[0], weight.shape[0]

        def grad_of_outputs(grad_log_lik):  # [B, N] -> [B, N*K]
            g = grad_log_lik.unsqueeze(-1).to(weight.dtype)
            if d_out is not None:
                return (d_out * g).reshape(flat)
            grad = -log_p.exp() * g
            return grad.scatter_add_(2, index, g).view(flat)

        grad_z = grad_w = grad_b = None
        if grad_to_input is not None and ctx.needs_input_grad[0]:
            grad_z = (grad_of_outputs(grad_to_input) @ weight).to(z.dtype)
        if grad_to_weight is not None and ctx.needs_input_grad[1]:
            grad_out = grad_of_outputs(grad_to_weight)
            grad_w = grad_out.t() @ z.to(weight.dtype)
            grad_b = grad_out.sum(0)
        return grad_z, grad_w, grad_b, None, None, None


class CopiesHead(nn.Module):
    """N copies of a ``Linear(d, K)`` output layer, as one ``[N, K, d]`` weight.

    Each copy is initialised independently, as ``nn.Linear`` would (uniform in
    ``+-1/sqrt(d)``), from the given generator so that the seed fixes them.
    """

    def __init__(
        self, in_features: int, out_features: int, n_copies: int, generator: torch.Generator
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.n_copies = n_copies
        bound = 1.0 / math.sqrt(in_features)
        shape = (n_copies, out_features, in_features)
        self.weight = nn.Parameter((torch.rand(shape, generator=generator) * 2 - 1) * bound)
        self.bias = nn.Parameter((torch.rand(shape[:2], generator=generator) * 2 - 1) * bound)

    def forward(self, z: Tensor) -> Tensor:
        """Every copy's output, ``[B, N, K]``, for prediction (no gradient routing)."""
        out = F.linear(z, self.weight.view(-1, self.in_features), self.bias.view(-1))
        return out.view(z.shape[0], self.n_copies, self.out_features)

    def log_likelihoods(self, z: Tensor, target: Tensor, regression: bool) -> tuple[Tensor, Tensor]:
        """``log p_j(y_b | x_b)`` for every example and copy, twice, ``[B, N]`` each.

        A loss taken on the first trains the pre-classifier only (the mixture's), a loss
        taken on the second trains the copies only (their own).
        """
        return _CopyLogLikelihoods.apply(
            z, self.weight.view(-1, self.in_features), self.bias.view(-1),
            target, self.n_copies, regression,
        )
