"""LARS and LARC: SGD with momentum whose rate is rescaled per tensor by a trust ratio.

You, Gitman & Ginsburg 2017 ("Large batch training of convolutional networks", LARS,
Sec. 3, Algorithm 1) give each layer the local rate
``trust = eta * ||w|| / (||g|| + wd * ||w||)``, so that a step changes a layer's weights by
a set fraction of their norm whatever the scale of its gradient. NVIDIA's LARC (the
revision the layer-wise discussion names, Smith's baseline 2) adds a clipping mode:

- ``mode="scale"`` (LARS): local rate ``lr * trust``;
- ``mode="clip"`` (LARC): local rate ``min(trust, lr)``: the trust ratio may only lower
  the global rate, never raise it.

A tensor whose weight or gradient norm is zero (a freshly zeroed bias) keeps ``lr``.
The local factor ``local_lr / lr`` multiplies ``g + wd * w`` before the momentum buffer and
``lr`` is applied after it, the convention of ``torch.optim.SGD`` and of LARC's reference
code (LARS's Algorithm 1 puts the rate inside the buffer instead; the two agree while
``lr`` is constant and differ only under a schedule).

``pytorch_optimizer`` (which has a LARS) is not installed here, hence this small one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal

import torch
from torch import Tensor

Mode = Literal["scale", "clip"]


class LARC(torch.optim.Optimizer):
    """SGD with momentum and layer-wise trust-ratio rates (LARS or LARC, see ``mode``).

    Defaults: ``trust_coefficient=1e-3`` is LARS's ``eta`` (You et al. 2017);
    ``momentum=0.9`` is the momentum of their experiments; ``mode="clip"`` and
    ``eps=1e-8`` (it guards the division) are the defaults of NVIDIA's LARC. ``lr`` has
    no default: it is the global rate (the cap, in clip mode) and depends on the task.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        trust_coefficient: float = 1e-3,
        mode: Mode = "clip",
        eps: float = 1e-8,
    ) -> None:
        if not lr >= 0:
            raise ValueError(f"lr must be >= 0, got {lr}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
        if not weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        if not trust_coefficient > 0:
            raise ValueError(f"trust_coefficient must be > 0, got {trust_coefficient}")
        if mode not in ("scale", "clip"):
            raise ValueError(f"mode must be 'scale' (LARS) or 'clip' (LARC), got {mode!r}")
        defaults = dict(
            lr=lr, momentum=momentum, weight_decay=weight_decay, trust_coefficient=trust_coefficient, mode=mode, eps=eps
        )
        super().__init__(params, defaults)

    def local_lrs(self) -> list[list[float]]:
        """Each group's per-tensor local rate at the last step (``nan`` before a tensor's
        first step): record once per epoch to show which layers the trust ratio slowed."""
        return [
            [float(self.state[p]["local_lr"]) if self.state[p] else float("nan") for p in group["params"]]
            for group in self.param_groups
        ]

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            momentum_buffers = [self.state[p].get("momentum_buffer") for p in params]
            local = larc(
                params, [p.grad for p in params], momentum_buffers,
                lr=group["lr"], momentum=group["momentum"], weight_decay=group["weight_decay"],
                trust_coefficient=group["trust_coefficient"], mode=group["mode"], eps=group["eps"],
            )
            for p, buf, local_lr in zip(params, momentum_buffers, local):
                self.state[p]["local_lr"] = local_lr
                if buf is not None:
                    self.state[p]["momentum_buffer"] = buf
        return loss


def larc(
    params: list[Tensor],
    grads: list[Tensor],
    momentum_buffers: list[Tensor | None],
    *,
    lr: float,
    momentum: float,
    weight_decay: float,
    trust_coefficient: float,
    mode: Mode,
    eps: float,
) -> list[Tensor]:
    """One LARS/LARC step; returns each tensor's local rate (a 0-d tensor).

    A missing momentum buffer (first step) is created in the list, holding the scaled
    direction itself, as ``torch.optim.SGD`` does; with ``momentum=0`` none is kept.
    """
    local_lrs = []
    for i, (p, grad) in enumerate(zip(params, grads)):
        w_norm, g_norm = p.norm(), grad.norm()
        trust = trust_coefficient * w_norm / (g_norm + weight_decay * w_norm + eps)
        factor = trust if mode == "scale" else torch.clamp(trust / lr, max=1.0)
        factor = torch.where((w_norm > 0) & (g_norm > 0), factor, torch.ones_like(factor))
        d = grad.add(p, alpha=weight_decay).mul_(factor)
        if momentum:
            if momentum_buffers[i] is None:
                momentum_buffers[i] = d.clone()
            else:
                momentum_buffers[i].mul_(momentum).add_(d)
            d = momentum_buffers[i]
        p.add_(d, alpha=-lr)
        local_lrs.append(factor * lr)
    return local_lrs
