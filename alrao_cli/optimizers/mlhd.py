"""Multi-level hypergradient descent: global, layer-wise and unit-wise rates, combined.

Jie et al., "Adaptive hierarchical hyper-gradient descent" (shared/papers/
hierarchical-hypergradient.txt). Each parameter element ``e`` of tensor (layer) ``l`` and
output unit ``k`` moves with the combined rate::

    alpha*_e = gamma_u alpha_u[l, k] + gamma_l alpha_l[l] + gamma_g alpha_g

with learned weights ``gamma_u + gamma_l + gamma_g = 1`` (the paper's convex combination
of the levels' rates, its answer to regularising over-parameterised rates). Every level's
rate is updated by its own hypergradient, Eq. (1)-(2) of Sec. 2.1 applied to the
parameters the rate is shared by: the derivative of the loss with respect to a rate shared
by a group of parameters is the sum, over the group, of ``-g_t * d_{t-1}`` (current
gradient times the previous update direction), here multiplied by the level's weight
``gamma`` because the rate enters the update only through ``alpha*`` (chain rule through
the combination). The weights get their hypergradient the same way,
``-sum_e alpha_level(e) g_t,e d_{t-1,e}``, and are renormalised to sum to one after their
step. The shared text stops after Eq. (2): the combination step is reconstructed from the
paper's description and the chain rule, not copied from its algorithm box.

A "layer" is one parameter tensor; a "unit" is one index of its first dimension (an output
feature of a Linear or Conv weight, one element of a bias); a 0-d tensor is one unit. All
levels start at ``lr``, so ``alpha*`` starts at ``lr`` whatever the initial weights.

``d`` is the gradient for :class:`SGDMLHD` and Adam's direction for :class:`AdamMLHD`
(Sec. 2.1's ``theta_t = u(Theta_{t-1}, alpha)`` allows any update rule; the derivative of
the update with respect to the rate is then ``-d``, as in Baydin et al.'s Adam-HD).
Global rate and weights live in the parameter group (``group["lr"]``,
``group["gammas"]``), layer and unit rates and the previous direction in each parameter's
state: a checkpoint resumes exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

from alrao_cli.optimizers.adam_direction import adam_directions

Gammas = tuple[float, float, float]
"""Combination weights ``(gamma_unit, gamma_layer, gamma_global)``."""


@dataclass(frozen=True)
class TensorRates:
    """One parameter tensor's rates now: its layer rate and the spread of its combined
    per-element rate ``alpha*`` over its units."""

    layer_lr: float
    effective_min: float
    effective_mean: float
    effective_max: float


@dataclass(frozen=True)
class GroupRates:
    """One parameter group's rates now, tensors in the group's parameter order."""

    global_lr: float
    gammas: Gammas
    tensors: list[TensorRates]


def _unit_shape(p: Tensor) -> tuple[int, ...]:
    """The shape that broadcasts a per-unit vector over ``p``: ``[out, 1, 1, ...]``."""
    return tuple(p.shape[:1]) + (1,) * max(p.dim() - 1, 0)


def _num_units(p: Tensor) -> int:
    return p.shape[0] if p.dim() else 1


class _MultiLevelHD(torch.optim.Optimizer):
    """State, step loop and accessors; subclasses give the update direction ``d_t``."""

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], defaults: dict) -> None:
        lr, hyper_lr, combo_lr, gammas = (defaults[k] for k in ("lr", "hyper_lr", "combo_lr", "gammas"))
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if not (hyper_lr >= 0 and combo_lr >= 0):
            raise ValueError(f"hyper_lr and combo_lr must be >= 0, got {hyper_lr} and {combo_lr}")
        if len(gammas) != 3 or min(gammas) < 0 or sum(gammas) <= 0:
            raise ValueError(f"gammas must be three weights >= 0 with a positive sum, got {gammas}")
        defaults["gammas"] = tuple(float(g) / sum(gammas) for g in gammas)
        super().__init__(params, defaults)

    def rates(self) -> list[GroupRates]:
        """The rates of every group now, for recording once per epoch. A tensor that has
        not had a gradient yet reports the global rate (what all its levels start at)."""
        out = []
        for group in self.param_groups:
            gu, gl, gg = group["gammas"]
            tensors = []
            for p in group["params"]:
                state = self.state[p]
                if not state:
                    lr = group["lr"]
                    tensors.append(TensorRates(lr, lr, lr, lr))
                    continue
                effective = gu * state["unit_lr"] + gl * state["layer_lr"] + gg * group["lr"]
                tensors.append(TensorRates(
                    float(state["layer_lr"]), float(effective.min()), float(effective.mean()), float(effective.max())
                ))
            out.append(GroupRates(group["lr"], group["gammas"], tensors))
        return out

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
            for p in params:
                if not self.state[p]:
                    self._init_state(self.state[p], p, group["lr"])
            states = [self.state[p] for p in params]
            grads = [p.grad for p in params]
            group["lr"], group["gammas"] = mlhd(
                params, grads, self._directions(group, grads, states),
                [s["prev_dir"] for s in states], [s["unit_lr"] for s in states], [s["layer_lr"] for s in states],
                global_lr=group["lr"], gammas=group["gammas"],
                hyper_lr=group["hyper_lr"], combo_lr=group["combo_lr"],
            )
        return loss

    def _init_state(self, state: dict, p: Tensor, lr: float) -> None:
        state["unit_lr"] = torch.full((_num_units(p),), lr, dtype=p.dtype, device=p.device)
        state["layer_lr"] = torch.tensor(lr, dtype=p.dtype, device=p.device)
        state["prev_dir"] = torch.zeros_like(p)  # no previous update: the first step adapts nothing

    def _directions(self, group: dict, grads: list[Tensor], states: list[dict]) -> list[Tensor]:
        raise NotImplementedError


class SGDMLHD(_MultiLevelHD):
    """SGD with multi-level hypergradient rates: ``theta -= alpha* * g``.

    Defaults: ``lr=1e-3`` and ``hyper_lr=1e-3`` are Baydin et al.'s SGD-HD values (the
    global level alone is SGD-HD); equal initial ``gammas`` and ``combo_lr = hyper_lr``
    are this implementation's choice (the shared paper text gives no values).
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 1e-3,
        hyper_lr: float = 1e-3,
        combo_lr: float = 1e-3,
        gammas: Gammas = (1 / 3, 1 / 3, 1 / 3),
    ) -> None:
        super().__init__(params, dict(lr=lr, hyper_lr=hyper_lr, combo_lr=combo_lr, gammas=gammas))

    def _directions(self, group: dict, grads: list[Tensor], states: list[dict]) -> list[Tensor]:
        return grads


class AdamMLHD(_MultiLevelHD):
    """Adam with multi-level hypergradient rates: ``theta -= alpha* * m_hat/(sqrt(v_hat)+eps)``.

    Defaults: ``lr=1e-3`` and ``hyper_lr=1e-7`` are Baydin et al.'s Adam-HD values,
    ``betas`` and ``eps`` Adam's; ``combo_lr = hyper_lr`` and equal ``gammas`` are this
    implementation's choice.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 1e-3,
        hyper_lr: float = 1e-7,
        combo_lr: float = 1e-7,
        gammas: Gammas = (1 / 3, 1 / 3, 1 / 3),
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        super().__init__(
            params, dict(lr=lr, hyper_lr=hyper_lr, combo_lr=combo_lr, gammas=gammas, betas=tuple(betas), eps=eps)
        )

    def _init_state(self, state: dict, p: Tensor, lr: float) -> None:
        super()._init_state(state, p, lr)
        state["step"] = 0
        state["exp_avg"] = torch.zeros_like(p)
        state["exp_avg_sq"] = torch.zeros_like(p)

    def _directions(self, group: dict, grads: list[Tensor], states: list[dict]) -> list[Tensor]:
        for s in states:
            s["step"] += 1
        beta1, beta2 = group["betas"]
        return adam_directions(
            grads, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states], [s["step"] for s in states],
            beta1=beta1, beta2=beta2, eps=group["eps"],
        )


def mlhd(
    params: list[Tensor],
    grads: list[Tensor],
    directions: list[Tensor],
    prev_dirs: list[Tensor],
    unit_lrs: list[Tensor],
    layer_lrs: list[Tensor],
    *,
    global_lr: float,
    gammas: Gammas,
    hyper_lr: float,
    combo_lr: float,
) -> tuple[float, Gammas]:
    """One multi-level step: adapt every level and the weights, then move the parameters.

    Updates ``unit_lrs`` and ``layer_lrs`` in place, stores ``directions`` in
    ``prev_dirs`` and returns the new global rate and weights. All hypergradients are taken
    at the previous values (those that produced ``theta_{t-1}``), then all values move:

    - ``s_k = sum_{e in unit k} g_t,e d_{t-1,e}``, ``S_l = sum_k s_k``, ``S = sum_l S_l``
      (minus Eq. (2)'s hypergradient, summed over the level's parameters as in Eq. (1));
    - ``alpha_u += beta gamma_u s``, ``alpha_l += beta gamma_l S_l``,
      ``alpha_g += beta gamma_g S``;
    - ``gamma_u += delta sum alpha_u s``, ``gamma_l += delta sum_l alpha_l S_l``,
      ``gamma_g += delta alpha_g S``, then ``gamma /= sum(gamma)``;
    - ``theta -= alpha* d_t`` with the new rates and weights.
    """
    gu, gl, gg = gammas
    unit_sums = [(g * prev).reshape(u.numel(), -1).sum(1) for g, prev, u in zip(grads, prev_dirs, unit_lrs)]
    layer_sums = [s.sum() for s in unit_sums]
    total, h_unit, h_layer = torch.stack([
        sum(layer_sums),
        sum((u * s).sum() for u, s in zip(unit_lrs, unit_sums)),
        sum(lr * s for lr, s in zip(layer_lrs, layer_sums)),
    ]).tolist()
    for unit_lr, s in zip(unit_lrs, unit_sums):
        unit_lr.add_(s, alpha=hyper_lr * gu)
    for layer_lr, s in zip(layer_lrs, layer_sums):
        layer_lr.add_(s, alpha=hyper_lr * gl)
    raw_u, raw_l, raw_g = gu + combo_lr * h_unit, gl + combo_lr * h_layer, gg + combo_lr * global_lr * total
    global_lr = global_lr + hyper_lr * gg * total
    norm = raw_u + raw_l + raw_g
    gu, gl, gg = raw_u / norm, raw_l / norm, raw_g / norm
    for p, d, prev, unit_lr, layer_lr in zip(params, directions, prev_dirs, unit_lrs, layer_lrs):
        rate = gu * unit_lr.reshape(_unit_shape(p)) + gl * layer_lr + gg * global_lr
        p.addcmul_(rate, d, value=-1)
        prev.copy_(d)
    return global_lr, (gu, gl, gg)
