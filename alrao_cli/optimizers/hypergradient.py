"""SGD-HD and Adam-HD: one learning rate, itself learned by hypergradient descent.

Baydin et al. 2018, "Online learning rate adaptation with hypergradient descent", Sec. 2:
before each update the rate takes one gradient step on the loss, whose derivative with
respect to the previous step's rate is ``h_t = g_t . d(u_{t-1})/d(alpha)`` (the current
gradient dotted with how the previous update moved with the rate). It is the one-run
baseline to Alrao with a single adaptive rate instead of many fixed ones.

Built in two layers, like ``torch.optim.SGD``: the class gathers lists and owns the state,
one plain function per method does the arithmetic and returns the new rate. The rate lives
in ``group["lr"]`` (saved in ``state_dict()["param_groups"]``) and the previous direction
in each parameter's state, so a checkpoint resumes exactly. The rate is one per parameter
group: with the usual single group it is the paper's global rate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from alrao_cli.optimizers.adam_direction import adam_directions


def _check_rates(lr: float, hyper_lr: float) -> None:
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if not hyper_lr >= 0:
        raise ValueError(f"hyper_lr must be >= 0, got {hyper_lr}")


class _HypergradientOptimizer(torch.optim.Optimizer):
    """The step loop and the rate accessor shared by SGD-HD and Adam-HD."""

    def current_lrs(self) -> list[float]:
        """The rate of each parameter group now: record it once per epoch to trace the
        trajectory the hypergradient gave the rate (one entry with a single group)."""
        return [group["lr"] for group in self.param_groups]

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                group["lr"] = self._update(group, params)
        return loss

    def _update(self, group: dict, params: list[Tensor]) -> float:
        raise NotImplementedError


class SGDHD(_HypergradientOptimizer):
    """Plain SGD whose rate follows SGD-HD (Baydin et al. 2018, Algorithm 1).

    Defaults ``lr=1e-3`` (the initial rate ``alpha_0``) and ``hyper_lr=1e-3`` (the
    hypergradient rate ``beta``) are the values of the paper's experiments for SGD-HD.
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], lr: float = 1e-3, hyper_lr: float = 1e-3) -> None:
        _check_rates(lr, hyper_lr)
        super().__init__(params, dict(lr=lr, hyper_lr=hyper_lr))

    def _update(self, group: dict, params: list[Tensor]) -> float:
        prev_grads = []
        for p in params:
            state = self.state[p]
            if not state:  # nabla_alpha u_0 = 0: the first step leaves the rate alone
                state["prev_grad"] = torch.zeros_like(p)
            prev_grads.append(state["prev_grad"])
        return sgd_hd(params, [p.grad for p in params], prev_grads, lr=group["lr"], hyper_lr=group["hyper_lr"])


def sgd_hd(
    params: list[Tensor], grads: list[Tensor], prev_grads: list[Tensor], *, lr: float, hyper_lr: float
) -> float:
    """One SGD-HD step; returns the new rate and stores ``grads`` in ``prev_grads``.

    Algorithm 1 of Baydin et al.: ``h_t = -g_t . g_{t-1}``, ``alpha_t = alpha_{t-1} -
    beta h_t`` (so the rate grows while successive gradients agree), then
    ``theta_t = theta_{t-1} - alpha_t g_t``. The dot product runs over every tensor given:
    one rate for all of them.
    """
    h = -sum(torch.dot(g.flatten(), prev.flatten()) for g, prev in zip(grads, prev_grads))
    lr = lr - hyper_lr * float(h)
    for p, g, prev in zip(params, grads, prev_grads):
        p.add_(g, alpha=-lr)
        prev.copy_(g)
    return lr


class AdamHD(_HypergradientOptimizer):
    """Adam whose rate follows Adam-HD (Baydin et al. 2018, Algorithm 3).

    Defaults: ``lr=1e-3`` and ``hyper_lr=1e-7``, the paper's values for Adam-HD (the
    hypergradient of Adam is a dot product of unit-scale directions with gradients, so
    ``beta`` is far smaller than for SGD-HD); ``betas=(0.9, 0.999)`` and ``eps=1e-8`` are
    Adam's own defaults (Kingma & Ba 2015), which the paper keeps.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 1e-3,
        hyper_lr: float = 1e-7,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        _check_rates(lr, hyper_lr)
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        super().__init__(params, dict(lr=lr, hyper_lr=hyper_lr, betas=tuple(betas), eps=eps))

    def _update(self, group: dict, params: list[Tensor]) -> float:
        exp_avgs, exp_avg_sqs, prev_dirs, steps = [], [], [], []
        for p in params:
            state = self.state[p]
            if not state:
                state["step"] = 0
                state["exp_avg"] = torch.zeros_like(p)
                state["exp_avg_sq"] = torch.zeros_like(p)
                state["prev_dir"] = torch.zeros_like(p)  # nabla_alpha u_0 = 0
            state["step"] += 1
            steps.append(state["step"])
            exp_avgs.append(state["exp_avg"])
            exp_avg_sqs.append(state["exp_avg_sq"])
            prev_dirs.append(state["prev_dir"])
        beta1, beta2 = group["betas"]
        return adam_hd(
            params, [p.grad for p in params], exp_avgs, exp_avg_sqs, prev_dirs, steps,
            lr=group["lr"], hyper_lr=group["hyper_lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
        )


def adam_hd(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    prev_dirs: list[Tensor],
    steps: list[int],
    *,
    lr: float,
    hyper_lr: float,
    beta1: float,
    beta2: float,
    eps: float,
) -> float:
    """One Adam-HD step; returns the new rate and stores this step's direction.

    Algorithm 3 of Baydin et al.: with ``u_t = -alpha_t d_t`` and
    ``d_t = m_hat_t / (sqrt(v_hat_t) + eps)``, the hypergradient is
    ``h_t = g_t . (-d_{t-1})``; ``alpha_t = alpha_{t-1} - beta h_t`` is taken *before*
    the moments see ``g_t``; then ``theta_t = theta_{t-1} - alpha_t d_t``.
    """
    h = -sum(torch.dot(g.flatten(), prev.flatten()) for g, prev in zip(grads, prev_dirs))
    lr = lr - hyper_lr * float(h)
    directions = adam_directions(grads, exp_avgs, exp_avg_sqs, steps, beta1=beta1, beta2=beta2, eps=eps)
    for p, d, prev in zip(params, directions, prev_dirs):
        p.add_(d, alpha=-lr)
        prev.copy_(d)
    return lr
