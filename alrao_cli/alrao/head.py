"""The output layer: finding it in a user's model, and its N copies.

Alrao replaces the classifier layer by N copies with log-spaced rates (paper, section 2).
The copies are one weight ``[N, K, d]`` so that all of them run as a single matrix
product, and one autograd function computes their outputs once while routing the
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


def find_head(
    model: nn.Module, num_classes: int, head: str | None = None, example_input: Tensor | None = None
) -> str:
    """Return the qualified name of the model's output layer.

    With ``head`` given, check that it names an ``nn.Linear``. Otherwise the output layer
    is the ``nn.Linear`` with ``num_classes`` outputs whose output *is* the model's
    output. When the model has one such Linear, that is it. When it has several, one
    forward pass on ``example_input`` (in eval mode, without gradients) tells which;
    without an example, the last registered one is taken (torchvision's classifiers and
    most hand-written models register their head last). Whether the guess was right is
    checked on the first forward pass (:class:`FeatureTap`), which names the others.
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
    candidates = head_candidates(model, num_classes)
    if not candidates:
        raise AlraoUserError(
            f"no output layer found: the model has no nn.Linear with {num_classes} outputs "
            f"({type(model).__name__})",
            hint="end the model with nn.Linear(d, num_classes), or name its output layer "
            "(--head NAME on the command line, head= in Python)",
        )
    if len(candidates) > 1 and example_input is not None:
        return _probe_head(model, num_classes, candidates, example_input)
    return candidates[-1]


def head_candidates(model: nn.Module, num_classes: int) -> list[str]:
    """Every ``nn.Linear`` with ``num_classes`` outputs, in registration order."""
    return [
        name
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear) and m.out_features == num_classes and name
    ]


def probe_forward(model: nn.Module, example_input: Tensor) -> object:
    """One forward pass that changes nothing: eval mode (no dropout, no BatchNorm update),
    no gradients, then every module back in the mode it was in.

    What it does do is give lazy layers (``nn.LazyLinear``...) their sizes.
    """
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            return model(example_input)
    finally:
        for m, training in modes.items():
            m.training = training


def _probe_head(model: nn.Module, num_classes: int, candidates: list[str], example_input: Tensor) -> str:
    """The candidate whose output tensor is the one the model returns, on one forward pass."""
    outputs: dict[str, object] = {}
    hooks = [
        model.get_submodule(name).register_forward_hook(
            lambda _module, _args, output, name=name: outputs.__setitem__(name, output)
        )
        for name in candidates
    ]
    try:
        result = probe_forward(model, example_input)
    finally:
        for hook in hooks:
            hook.remove()
    for name in candidates:
        if outputs.get(name) is result:
            return name
    called = [name for name in candidates if name in outputs]
    hint = (
        "return the output layer's result as is (no softmax or reshape after it), "
        "or name the output layer (--head NAME on the command line, head= in Python)"
    )
    if not called:
        raise AlraoUserError(
            f"none of the nn.Linear layers with {num_classes} outputs "
            f"({', '.join(candidates)}) was called in forward()",
            hint=hint,
        )
    raise AlraoUserError(f"the model transforms the output of {called[-1]!r} before returning it", hint=hint)


class FeatureTap(nn.Module):
    """Stands where the output layer was and hands its input (the features) back.

    The wrapped model then returns the features ``z`` instead of the logits. If the
    model does something to the head's output before returning it (a softmax, a reshape),
    or never calls it, :meth:`take` says so clearly. When the layer was guessed among
    several, ``others`` names the other Linear layers with as many outputs.
    """

    def __init__(self, head_name: str, others: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.head_name = head_name
        self.others = others
        self._features: Tensor | None = None

    def forward(self, z: Tensor) -> Tensor:
        self._features = z
        return z

    def features(self, model: nn.Module, x: Tensor) -> Tensor:
        """Run ``model`` (which holds this tap) on ``x`` and return the features ``z``.

        While the layer is an unconfirmed guess, a failure after it (the features fed to
        a layer that expected the guessed layer's output) is reported as the wrong guess
        it probably is, with the original error; the first forward that works confirms it.
        """
        if not self.others:
            return self.take(model(x))
        try:
            output = model(x)
        except Exception as error:
            if self._features is None:  # it failed before the guessed layer: not about it
                raise
            self._features = None
            raise AlraoUserError(
                f"the model failed after the output layer {self.head_name!r} "
                f"({type(error).__name__}: {error})",
                hint=self._name_the_head("name the layer that produces the model's output"),
            ) from error
        z = self.take(output)
        self.others = ()  # the guess was right
        return z

    def take(self, model_output: object) -> Tensor:
        z, self._features = self._features, None
        if z is None:
            raise AlraoUserError(
                f"the output layer {self.head_name!r} was never called in forward()",
                hint=self._name_the_head("name the layer that produces the model's output"),
            )
        if model_output is not z:
            raise AlraoUserError(
                f"the model transforms the output of {self.head_name!r} before returning it",
                hint=self._name_the_head(
                    "return the Linear layer's output as is (no softmax or reshape after it), "
                    "or name the right layer"
                ),
            )
        if z.dim() != 2:
            raise AlraoUserError(
                f"the output layer {self.head_name!r} receives features of shape "
                f"{tuple(z.shape)}; Alrao expects [batch, features]",
                hint="flatten or pool the features before the output layer",
            )
        return z

    def _name_the_head(self, advice: str) -> str:
        if not self.others:
            return f"{advice} (--head NAME, or head= in Python)"
        example = self.others[-1]
        return (
            f"{self.head_name!r} was a guess, the last registered nn.Linear with as many outputs; "
            f"the others are {', '.join(self.others)}: name the output layer (--head {example}, "
            f"or head={example!r} in Python), or give AlraoModel an example_input= to find it"
        )


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


def _copy_log_likelihoods(out: Tensor, target: Tensor, regression: bool) -> tuple[Tensor, Tensor]:
    """``log p_j(y_b | x_b)``, ``[B, N]``, from the copies' outputs ``out``, class-major ``[B, K, N]``.

    Returns it with what its gradient needs, laid out like ``out``: the residual
    (regression) or the log-probabilities (classification).
    """
    batch, _, n_copies = out.shape
    if regression:
        saved = out - target.view(batch, -1, 1).to(out.dtype)  # the residual
        log_lik = -0.5 * saved.pow(2).sum(1) - _HALF_LOG_2PI * out.shape[1]
    else:
        saved = F.log_softmax(out, dim=1)
        log_lik = saved.gather(1, target.view(batch, 1, 1).expand(batch, 1, n_copies)).squeeze(1)
    # A copy whose rate is too large diverges (its weights and outputs go to inf, then
    # NaN); it must count as probability zero, not poison the mixture.
    return vanishing_if_not_finite(log_lik), saved


def vanishing_if_not_finite(log_p: Tensor) -> Tensor:
    """Log-probabilities with NaN (a diverged copy) read as probability zero."""
    return torch.nan_to_num(log_p, nan=-math.inf, posinf=-math.inf, neginf=-math.inf)


class _AlraoHeadLoss(torch.autograd.Function):
    """The copies' outputs and both Alrao losses in one function, with one forward product.

    Forward: ``out = z W^T + b`` for all N copies at once (``W`` is ``[K*N, d]``,
    class-major), each copy's log-likelihood ``ll[b, j]``, then

    - ``mixture_loss = -mean_b log sum_j a_j p_j(y_b|x_b)``, the loss of the model's
      actual prediction, the only differentiable output, so that ``backward()`` enters
      here directly, through no graph of small ops; and
    - ``copy_log_lik[j] = mean_b ll[b, j]``, each copy's own (negated) loss.

    Backward gives the gradient of ``mixture_loss - sum_j copy_log_lik[j]`` and routes
    it apart: the mixture's part to ``z`` only (it trains the pre-classifier), the
    copies' part to ``W`` and ``b`` only (each copy learns as if alone). That equals
    autograd through two linear maps, one with detached weights and one with a detached
    input, for one product instead of two and a handful of small ops instead of a graph
    of them (the tests compare it with that slow version). On a CPU these small ops
    cost more than the products, so each one here is counted.
    """

    @staticmethod
    def forward(ctx, z, weight, bias, target, log_posterior, n_copies: int, regression: bool):  # noqa: D102
        batch = z.shape[0]
        out = F.linear(z, weight, bias).view(batch, -1, n_copies)  # [B, K, N]
        log_lik, saved = _copy_log_likelihoods(out, target, regression)  # [B, N]
        log_joint = log_lik + log_posterior.to(log_lik.dtype)  # log a_j p_j(y_b|x_b)
        # logsumexp and the responsibilities from one exp: fewer small ops than
        # torch.logsumexp followed by a softmax.
        top = log_joint.amax(dim=1, keepdim=True)  # [B, 1]; -inf only if every copy diverged
        responsibility = (log_joint - top).exp_()
        total = responsibility.sum(dim=1, keepdim=True)
        responsibility.div_(total)  # P(copy j | x_b, y_b), [B, N]
        log_mix = total.log_().add_(top)  # [B, 1]
        ctx.save_for_backward(z, weight, saved, responsibility, target)
        ctx.regression = regression
        copy_log_lik = log_lik.mean(0)
        ctx.mark_non_differentiable(copy_log_lik)
        return -log_mix.mean(), copy_log_lik

    @staticmethod
    def backward(ctx, grad, _grad_copy_log_lik):  # noqa: D102
        z, weight, saved, responsibility, target = ctx.saved_tensors
        batch, n_copies = responsibility.shape
        # own[b, k, j] = d (copy j's own loss) / d out[b, k, j] = -(d ll / d out) / B, with
        # d ll / d out = -(out - y) (regression) or one-hot(y) - softmax (classification).
        # The mixture's gradient is the same, weighted by copy j's responsibility for b.
        scale = grad / batch
        if ctx.regression:  # the residual
            own = saved * scale
        else:  # softmax - one-hot(y), from the log-softmax
            own = saved.exp().mul_(scale)
            at_target = target.view(batch, 1, 1).expand(batch, 1, n_copies)
            own.scatter_add_(1, at_target, (-scale).expand(batch, 1, n_copies))
        # A diverged copy (NaN outputs, zero responsibility) sends nothing back, neither to
        # z nor to itself, and its non-finite weights stay out of grad_z (0 * inf is NaN).
        own.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
        grad_z = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            mixture = (own * responsibility.to(own.dtype).unsqueeze(1)).view(batch, -1)
            grad_z = (mixture @ torch.nan_to_num(weight, nan=0.0, posinf=0.0, neginf=0.0)).to(z.dtype)
        own = own.view(batch, -1)  # [B, K*N], like the weight's rows
        if ctx.needs_input_grad[1]:
            grad_w = own.t() @ z.to(weight.dtype)
        if ctx.needs_input_grad[2]:
            grad_b = own.sum(0)
        return grad_z, grad_w, grad_b, None, None, None, None


class CopiesHead(nn.Module):
    """N copies of a ``Linear(d, K)`` output layer: ``weight[j]`` ``[K, d]`` and ``bias[j]`` are copy j's.

    Each copy is initialised independently, as ``nn.Linear`` would (uniform in
    ``+-1/sqrt(d)``), from the given generator so that the seed fixes them.

    The parameters are ``[N, K, d]`` and ``[N, K]`` views of class-major storage
    (``[K, N, d]``, ``[K, N]``): one product then gives every copy's outputs with the
    classes outermost, ``[B, K, N]``, the layout where the CPU log-softmax vectorises
    across the copies (up to 4x faster than over a last dimension of 10 classes), with no
    transposition either way. Their gradients and optimizer states take the same layout.
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
        weight = (torch.rand(shape, generator=generator) * 2 - 1) * bound
        bias = (torch.rand(shape[:2], generator=generator) * 2 - 1) * bound
        self.weight = nn.Parameter(weight.transpose(0, 1).contiguous().transpose(0, 1))
        self.bias = nn.Parameter(bias.t().contiguous().t())

    def _class_major(self) -> tuple[Tensor, Tensor]:
        """The weight as ``[K*N, d]`` and the bias as ``[K*N]``, rows ordered by class, then copy.

        Views of the parameters (a copy only if something changed their layout).
        """
        return self.weight.transpose(0, 1).reshape(-1, self.in_features), self.bias.t().reshape(-1)

    def class_major_outputs(self, z: Tensor) -> Tensor:
        """Every copy's output, ``[B, K, N]`` (no gradient routing)."""
        return F.linear(z, *self._class_major()).view(z.shape[0], self.out_features, self.n_copies)

    def forward(self, z: Tensor) -> Tensor:
        """Every copy's output, ``[B, N, K]``, for prediction (no gradient routing)."""
        return self.class_major_outputs(z).transpose(1, 2)

    def log_likelihoods(self, z: Tensor, target: Tensor, regression: bool) -> Tensor:
        """``log p_j(y_b | x_b)`` for every example and copy, ``[B, N]`` (no gradient routing)."""
        return _copy_log_likelihoods(self.class_major_outputs(z), target, regression)[0]

    def losses(
        self, z: Tensor, target: Tensor, log_posterior: Tensor, regression: bool
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The loss to backpropagate, the mixture's loss, each copy's mean log-likelihood.

        The first two have the same value; only the first carries gradients, and they
        are Alrao's: the mixture's loss trains the pre-classifier only, each copy's own
        loss trains that copy only (see :class:`_AlraoHeadLoss`). The other two (a
        scalar, ``[N]``) are for reporting and for the switch.
        """
        backward_loss, copy_log_lik = _AlraoHeadLoss.apply(
            z, *self._class_major(), target, log_posterior, self.n_copies, regression
        )
        return backward_loss, backward_loss.detach(), copy_log_lik
