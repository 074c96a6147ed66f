"""AlraoSGD and AlraoAdam: optimizers whose learning rate is a tensor per parameter.

Built in two layers, like ``torch.optim.SGD``: the class owns the state and, in
``step()``, only gathers lists (parameters with a gradient, their gradients, their rate
tensors, their buffers); one plain function does the arithmetic, either one tensor at a
time (easy to read) or with the ``torch._foreach_*`` ops (one call for all tensors). Both
paths give the same numbers; the foreach path is the default.

The rates are not the optimizer's: they belong to the :class:`AlraoModel` (drawn when it
was built, saved in its state dict). The optimizer reads them from the model at each step,
so moving the model with ``.to(device)`` moves them too.
"""

from __future__ import annotations

import torch
from torch import Tensor

from alrao_cli.alrao.model import AlraoModel


class _AlraoOptimizer(torch.optim.Optimizer):
    """Shared plumbing: the model's trainable parameters, each looked up with its rate.

    Rates are found by parameter (not by position), so a group added later with
    ``add_param_group`` (a layer unfrozen for fine-tuning) gets its own rates; a
    parameter that has none (not the model's, or frozen when the model was built) is
    refused.
    """

    def __init__(self, model: AlraoModel, defaults: dict) -> None:
        if not isinstance(model, AlraoModel):
            raise TypeError(
                f"{type(self).__name__} takes the AlraoModel itself (its rates live there), "
                f"got {type(model).__name__}"
            )
        pairs = model.parameters_with_rates()
        self._rates = model.rates._buffers  # live dict: follows .to(device)
        self._rate_names = {id(p): name for p, name in pairs}  # the model holds the parameters
        super().__init__([p for p, _ in pairs if p.requires_grad], defaults)

    def add_param_group(self, param_group: dict) -> None:  # noqa: D102
        params = param_group["params"]
        if not isinstance(params, set):  # torch refuses sets itself (their order is not fixed)
            params = param_group["params"] = [params] if isinstance(params, Tensor) else list(params)
            unknown = [i for i, p in enumerate(params) if id(p) not in self._rate_names]
            if unknown:
                raise ValueError(
                    f"{type(self).__name__}: parameter {unknown[0]} of the new group has no Alrao "
                    "rate; only the AlraoModel's own parameters have rates (those frozen when it "
                    "was built have none: unfreeze them before wrapping the model)"
                )
        super().add_param_group(param_group)

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._update(group, *self._gather(group))
        return loss

    def _update(self, group: dict, params: list[Tensor], grads: list[Tensor], rates: list[Tensor]) -> None:
        raise NotImplementedError

    def _gather(self, group: dict) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """The parameters that have a gradient, their gradients and their rate tensors."""
        params, grads, rates = [], [], []
        for p in group["params"]:
            if p.grad is not None:
                params.append(p)
                grads.append(p.grad)
                rates.append(self._rates[self._rate_names[id(p)]])
        return params, grads, rates


class AlraoSGD(_AlraoOptimizer):
    """SGD where every feature of the pre-classifier and every output copy has its rate.

    ``p -= rate * d`` with ``d = grad + weight_decay * p`` (optionally heavy-ball
    momentum ``buf = momentum * buf + d``, and Nesterov). Momentum is the standard one,
    independent of the rate, unlike the rate-dependent clamp of the paper's released code.

    >>> model = AlraoModel(net, num_classes=10)
    >>> optimizer = AlraoSGD(model, momentum=0.9)
    """

    def __init__(
        self,
        model: AlraoModel,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        foreach: bool = True,
    ) -> None:
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        if nesterov and momentum == 0:
            raise ValueError("nesterov needs a momentum above 0")
        defaults = {
            "momentum": momentum, "weight_decay": weight_decay, "nesterov": nesterov,
            "foreach": foreach, "step": 0,  # steps taken, for the record: the update does not use it
        }
        super().__init__(model, defaults)

    def _update(self, group, params, grads, rates):
        buffers = None
        if group["momentum"]:
            buffers = [self.state[p].get("momentum_buffer") for p in params]
        alrao_sgd(
            params, grads, rates, buffers,
            momentum=group["momentum"], weight_decay=group["weight_decay"],
            nesterov=group["nesterov"], foreach=group["foreach"],
        )
        if buffers is not None:
            for p, buf in zip(params, buffers):
                self.state[p]["momentum_buffer"] = buf
        group["step"] += 1


def alrao_sgd(
    params: list[Tensor],
    grads: list[Tensor],
    rates: list[Tensor],
    momentum_buffers: list[Tensor | None] | None,
    *,
    momentum: float,
    weight_decay: float,
    nesterov: bool,
    foreach: bool,
) -> None:
    """The SGD arithmetic. A missing momentum buffer starts at zero, so that the first
    step's buffer is the direction itself, as in ``torch.optim.SGD``."""
    if not params:
        return
    if momentum:
        for i, buf in enumerate(momentum_buffers):
            if buf is None:
                momentum_buffers[i] = torch.zeros_like(params[i])
    impl = _multi_tensor_sgd if foreach else _single_tensor_sgd
    impl(params, grads, rates, momentum_buffers, momentum, weight_decay, nesterov)


def _single_tensor_sgd(params, grads, rates, buffers, momentum, weight_decay, nesterov):
    for i, (p, grad, rate) in enumerate(zip(params, grads, rates)):
        d = grad.add(p, alpha=weight_decay) if weight_decay else grad
        if momentum:
            buffers[i].mul_(momentum).add_(d)
            d = d.add(buffers[i], alpha=momentum) if nesterov else buffers[i]
        p.addcmul_(d, rate, value=-1.0)


def _multi_tensor_sgd(params, grads, rates, buffers, momentum, weight_decay, nesterov):
    if weight_decay:
        grads = torch._foreach_add(grads, params, alpha=weight_decay)
    if momentum:
        torch._foreach_mul_(buffers, momentum)
        torch._foreach_add_(buffers, grads)
        grads = torch._foreach_add(grads, buffers, alpha=momentum) if nesterov else buffers
    torch._foreach_addcmul_(params, grads, rates, value=-1.0)


class AlraoAdam(_AlraoOptimizer):
    """Adam with Alrao's per-feature rates: ``p -= rate * m_hat / (sqrt(v_hat) + eps)``.

    Each parameter counts its own steps (in its state, as ``torch.optim.Adam`` does), so
    that one whose first gradient comes late (a layer used only after a while, a group
    added with ``add_param_group``) gets the bias correction of its own first step, not
    that of the steps it missed.

    Beware: the paper finds that Alrao-Adam, unlike Alrao-SGD, tends to overfit (its
    validation loss rises late in training, section 4); prefer AlraoSGD for screening,
    and keep the best epoch when you use this.
    """

    def __init__(
        self,
        model: AlraoModel,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        foreach: bool = True,
    ) -> None:
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        defaults = {"betas": betas, "eps": eps, "weight_decay": weight_decay, "foreach": foreach}
        super().__init__(model, defaults)

    def __setstate__(self, state: dict) -> None:
        """Take a state (``load_state_dict``, unpickling), also one saved by an older AlraoAdam.

        That one counted steps per group (``group["step"]``) and had no ``foreach``: each
        parameter with a state takes its group's count, which is what its bias correction
        used then, so training goes on with the same numbers.
        """
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("foreach", True)
            group_step = group.pop("step", None)
            if group_step is None:
                continue
            for p in group["params"]:
                param_state = self.state.get(p)
                if param_state and "step" not in param_state:
                    param_state["step"] = int(group_step)

    def _update(self, group, params, grads, rates):
        if not params:
            return
        exp_avgs, exp_avg_sqs, steps = [], [], []
        for p in params:
            state = self.state[p]
            if not state:
                state["step"] = 0
                state["exp_avg"] = torch.zeros_like(p)
                state["exp_avg_sq"] = torch.zeros_like(p)
            state["step"] += 1
            exp_avgs.append(state["exp_avg"])
            exp_avg_sqs.append(state["exp_avg_sq"])
            steps.append(state["step"])
        alrao_adam(
            params, grads, rates, exp_avgs, exp_avg_sqs, steps,
            betas=group["betas"], eps=group["eps"], weight_decay=group["weight_decay"],
            foreach=group["foreach"],
        )


def alrao_adam(
    params: list[Tensor],
    grads: list[Tensor],
    rates: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    steps: list[int],
    *,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    foreach: bool,
) -> None:
    """The Adam arithmetic; ``steps[i]`` is parameter i's step count, this step included.

    The bias corrections are Python floats computed from those counts: no tensor op
    and no host synchronisation for them.
    """
    if not params:
        return
    beta1, beta2 = betas
    # p += (m / (sqrt(v) / sqrt(1 - b2^t) + eps)) * (-1 / (1 - b1^t)) * rate
    root_corrections = [(1 - beta2**step) ** 0.5 for step in steps]
    step_scales = [-1.0 / (1 - beta1**step) for step in steps]
    impl = _multi_tensor_adam if foreach else _single_tensor_adam
    impl(params, grads, rates, exp_avgs, exp_avg_sqs, root_corrections, step_scales, betas, eps, weight_decay)


def _single_tensor_adam(
    params, grads, rates, exp_avgs, exp_avg_sqs, root_corrections, step_scales, betas, eps, weight_decay
):
    beta1, beta2 = betas
    for i, (p, grad, rate) in enumerate(zip(params, grads, rates)):
        if weight_decay:
            grad = grad.add(p, alpha=weight_decay)
        exp_avgs[i].lerp_(grad, 1 - beta1)
        exp_avg_sqs[i].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denominator = exp_avg_sqs[i].sqrt().div_(root_corrections[i]).add_(eps)
        update = exp_avgs[i].div(denominator).mul_(step_scales[i])
        p.addcmul_(update, rate)


def _multi_tensor_adam(
    params, grads, rates, exp_avgs, exp_avg_sqs, root_corrections, step_scales, betas, eps, weight_decay
):
    beta1, beta2 = betas
    if weight_decay:
        grads = torch._foreach_add(grads, params, alpha=weight_decay)
    torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta2)
    denominators = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_div_(denominators, root_corrections)
    torch._foreach_add_(denominators, eps)
    updates = torch._foreach_div(exp_avgs, denominators)
    torch._foreach_mul_(updates, step_scales)
    torch._foreach_addcmul_(params, updates, rates)
