"""Exact hypergradients of a learning-rate schedule, by running SGD backwards.

Maclaurin, Duvenaud & Adams (2015), "Gradient-based Hyperparameter Optimization through
Reversible Learning". The validation loss after T steps of SGD with momentum is a
differentiable function of the schedule; reverse-mode differentiation needs the weights
of every step, and instead of storing them (memory ∝ T) the training run is reversed
step by step, recomputing each w_t from w_{t+1}:

* Algorithm 1 (forward), for t = 0 … T-1, with α, γ taken from step t's block::

      g_t = ∇_w L(w_t, batch_t)
      v_{t+1} = γ v_t - (1 - γ) g_t
      w_{t+1} = w_t + α v_{t+1}

* Algorithm 2 (reverse), dw = ∇f(w_T), dv = 0, for t = T-1 … 0::

      dα += dw · v_{t+1}
      w_t = w_{t+1} - α v_{t+1}                       (exact, below)
      dv += α dw
      g_t = ∇_w L(w_t, batch_t)
      v_t = (v_{t+1} + (1 - γ) g_t) / γ                (exact, below)
      dγ += dv · (v_t + g_t)
      dw -= ∇²_w L(w_t, batch_t) ((1 - γ) dv)        (Hessian-vector product)
      dv = γ dv

  leaving dw = df/dw_0 and the hypergradients df/dα, df/dγ, summed per block and layer.

Exactness (Sec. 2.3): weights and velocities are fixed-point integers (``radix_bits``
fractional bits, default 52) and γ is the ratio n / 2^16, so each step is undone
exactly and the reverse pass ends at the initial weights *bit for bit*; the bits that
multiplying by γ < 1 destroys are kept in the information buffer
(:mod:`alrao_cli.learned.fixed_point`, :mod:`alrao_cli.learned.info_buffer`). The
gradient g_t is recomputed in the reverse pass by the very same call as in the forward
pass (with ``create_graph=True`` in both), so it is the same bits.

Memory: the weights, velocities, dw and dv (8 bytes each per weight) do not depend on
T; only the information buffer grows, by log2(2^16 / n) ≈ log2(1/γ) bits per weight per
step (0.152 bits for γ = 0.9, i.e. ~2 KB per step for 100k weights) after a one-time 16
bits per weight, held in 4-byte limbs of 31 bits. Time: the reverse pass costs a
gradient and a Hessian-vector product per step, about three forward-pass gradients.

The hyperparameters are the per-block, per-layer schedules ``alpha[block, layer]`` and
``gamma[block, layer]`` (the paper's learning-rate and momentum schedules, Sec. 3.1):
the T steps are cut into ``blocks`` equal chunks, the flat weight vector into layers
(consecutive groups, e.g. each layer's weights and biases separately).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from alrao_cli.learned.fixed_point import (
    RATIO_DENOMINATOR,
    checked_add,
    divide_ratio,
    from_fixed,
    multiply_ratio,
    quantize_ratio,
    to_fixed,
)
from alrao_cli.learned.info_buffer import InformationBuffer

LossFn = Callable[[Tensor, Any], Tensor]
DEFAULT_RADIX_BITS = 52  # float64 resolution near 1, 10 integer bits of headroom
DEFAULT_META_LR = 0.1  # Adam step on log α and logit γ (not from the paper)


@dataclass(frozen=True)
class ReversibleProblem:
    """A small model's training task, as reversible SGD sees it.

    ``loss(w, batch)`` takes the flat weight vector; ``train_batch(t)`` must return the
    same batch every time it is asked for step t (the reverse pass asks again);
    ``layer_sizes`` cuts the flat vector into the groups that get their own rates.
    """

    loss: LossFn
    train_batch: Callable[[int], Any]
    val_batch: Any
    layer_sizes: Sequence[int]
    steps: int
    radix_bits: int = DEFAULT_RADIX_BITS


@dataclass(frozen=True)
class Schedule:
    """Learning rates ``alpha`` and momentum decays ``gamma``, both [blocks, layers]."""

    alpha: Tensor
    gamma: Tensor

    @classmethod
    def constant(cls, blocks: int, layers: int, alpha: float, gamma: float) -> Schedule:
        """The same α and γ for every block and layer."""
        return cls(
            torch.full((blocks, layers), alpha, dtype=torch.float64),
            torch.full((blocks, layers), gamma, dtype=torch.float64),
        )


@dataclass
class ExactState:
    """Where the exact forward run stands: fixed-point w and v, the buffer, the step."""

    weights: Tensor
    velocity: Tensor
    buffer: InformationBuffer
    step: int

    def state_dict(self) -> dict[str, Any]:
        """All of it: a forward run saved here can be reversed later, elsewhere."""
        return {
            "weights": self.weights.clone(),
            "velocity": self.velocity.clone(),
            "buffer": self.buffer.state_dict(),
            "step": self.step,
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> ExactState:
        """Rebuild a state saved with :meth:`state_dict`."""
        weights = state["weights"]
        buffer = InformationBuffer(weights.numel(), weights.device)
        buffer.load_state_dict(state["buffer"])
        return cls(weights.clone(), state["velocity"].clone(), buffer, state["step"])


@dataclass(frozen=True)
class Hypergradient:
    """Algorithm 2's outputs, and the initial weights it recovered on the way."""

    val_loss: float
    d_alpha: Tensor  # [blocks, layers]
    d_gamma: Tensor  # [blocks, layers]
    d_w0: Tensor  # df/dw_0, flat
    initial_weights: Tensor  # w_0 rebuilt by reversal (fixed-point, as float)


@dataclass(frozen=True)
class MetaRound:
    """One round of :func:`meta_optimize`: the schedule tried and what it gave."""

    schedule: Schedule
    val_loss: float
    d_alpha: Tensor
    d_gamma: Tensor


@dataclass(frozen=True)
class MetaResult:
    """The tuned schedule, its validation loss, and every round before it."""

    schedule: Schedule
    val_loss: float
    history: list[MetaRound] = field(default_factory=list)


class _StepRules:
    """The per-weight α, γ and n/2^16 of each block, expanded once per run."""

    def __init__(
        self,
        problem: ReversibleProblem,
        schedule: Schedule,
        size: int,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        blocks, layers = schedule.alpha.shape
        if schedule.gamma.shape != schedule.alpha.shape:
            raise ValueError(
                f"alpha {tuple(schedule.alpha.shape)} and gamma {tuple(schedule.gamma.shape)} differ in shape"
            )
        if layers != len(problem.layer_sizes) or sum(problem.layer_sizes) != size:
            raise ValueError(
                f"schedule has {layers} layers and the weights {size} entries, but layer_sizes is "
                f"{list(problem.layer_sizes)}"
            )
        if not 1 <= blocks <= problem.steps:
            raise ValueError(f"{blocks} blocks cannot cut {problem.steps} steps")
        sizes = torch.tensor(list(problem.layer_sizes))
        self.layer_of = torch.repeat_interleave(torch.arange(layers), sizes).to(device)
        self.blocks, self.layers, self.steps = blocks, layers, problem.steps
        numerators = quantize_ratio(schedule.gamma).to(device)
        schedule_alpha = schedule.alpha.to(device, dtype)
        self.alpha = [schedule_alpha[b][self.layer_of] for b in range(blocks)]
        self.numerator = [numerators[b][self.layer_of] for b in range(blocks)]
        self.gamma = [(n.to(torch.float64) / RATIO_DENOMINATOR).to(dtype) for n in self.numerator]

    def block(self, t: int) -> int:
        """Which block step t belongs to (equal chunks of the T steps)."""
        return t * self.blocks // self.steps

    def per_layer(self, per_weight: Tensor) -> Tensor:
        """Sum a per-weight quantity over each layer."""
        zeros = torch.zeros(self.layers, dtype=per_weight.dtype, device=per_weight.device)
        return zeros.index_add_(0, self.layer_of, per_weight)


def _gradient(problem: ReversibleProblem, w: Tensor, t: int) -> tuple[Tensor, Tensor]:
    """(leaf w, ∇_w L(w, batch_t) with its graph): one call shared by both passes, same bits."""
    leaf = w.detach().requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(problem.loss(leaf, problem.train_batch(t)), leaf, create_graph=True)
    return leaf, g


def _position_increment(
    rules: _StepRules, b: int, velocity: Tensor, problem: ReversibleProblem, dtype: torch.dtype
) -> Tensor:
    """α v_{t+1} in fixed point, computed identically when adding and when subtracting it."""
    return to_fixed(rules.alpha[b] * from_fixed(velocity, problem.radix_bits, dtype), problem.radix_bits)


def _gradient_increment(rules: _StepRules, b: int, g: Tensor, problem: ReversibleProblem) -> Tensor:
    """(1 - γ) g_t in fixed point, computed identically in both passes."""
    return to_fixed((1 - rules.gamma[b]) * g.detach(), problem.radix_bits)


def train_reversibly(problem: ReversibleProblem, w0: Tensor, schedule: Schedule) -> ExactState:
    """Algorithm 1 in exact arithmetic: T steps of SGD with momentum from w0, v = 0."""
    rules = _StepRules(problem, schedule, w0.numel(), w0.dtype, w0.device)
    state = ExactState(
        weights=to_fixed(w0.detach().flatten(), problem.radix_bits),
        velocity=torch.zeros(w0.numel(), dtype=torch.int64, device=w0.device),
        buffer=InformationBuffer(w0.numel(), w0.device),
        step=0,
    )
    for t in range(problem.steps):
        b = rules.block(t)
        _, g = _gradient(problem, from_fixed(state.weights, problem.radix_bits, w0.dtype), t)
        velocity = multiply_ratio(state.velocity, rules.numerator[b], state.buffer)
        state.velocity = checked_add(velocity, -_gradient_increment(rules, b, g, problem))
        state.weights = checked_add(
            state.weights, _position_increment(rules, b, state.velocity, problem, w0.dtype)
        )
        state.step = t + 1
    return state


def reverse_hypergradient(
    problem: ReversibleProblem, state: ExactState, schedule: Schedule, dtype: torch.dtype = torch.float64
) -> Hypergradient:
    """Algorithm 2: reverse the finished run ``state`` (in place, back to step 0).

    ``dtype`` must be the one the forward run computed in (that of its w0).
    """
    if state.step != problem.steps:
        raise ValueError(f"the run stands at step {state.step}, not at its end ({problem.steps})")
    rules = _StepRules(problem, schedule, state.weights.numel(), dtype, state.weights.device)
    w_final = from_fixed(state.weights, problem.radix_bits, dtype).requires_grad_(True)
    with torch.enable_grad():
        val_loss = problem.loss(w_final, problem.val_batch)
        (dw,) = torch.autograd.grad(val_loss, w_final)
    dv = torch.zeros_like(dw)
    d_alpha = torch.zeros(rules.blocks, rules.layers, dtype=dtype, device=dw.device)
    d_gamma = torch.zeros_like(d_alpha)
    for t in reversed(range(problem.steps)):
        b = rules.block(t)
        d_alpha[b] += rules.per_layer(dw * from_fixed(state.velocity, problem.radix_bits, dtype))
        state.weights = checked_add(
            state.weights, -_position_increment(rules, b, state.velocity, problem, dtype)
        )
        dv = dv + rules.alpha[b] * dw
        leaf, g = _gradient(problem, from_fixed(state.weights, problem.radix_bits, dtype), t)
        velocity = checked_add(state.velocity, _gradient_increment(rules, b, g, problem))
        state.velocity = divide_ratio(velocity, rules.numerator[b], state.buffer)
        state.step = t
        d_gamma[b] += rules.per_layer(
            dv * (from_fixed(state.velocity, problem.radix_bits, dtype) + g.detach())
        )
        dw = dw - _hessian_vector(leaf, g, (1 - rules.gamma[b]) * dv)  # H is symmetric: H diag(1-γ) dv
        dv = rules.gamma[b] * dv
    if bool(state.velocity.any()) or not state.buffer.is_empty():
        raise RuntimeError(
            "reversal was not exact (velocity or information buffer not back to zero): "
            "the loss or train_batch gave different results in the reverse pass"
        )
    return Hypergradient(
        val_loss=float(val_loss.detach()),
        d_alpha=d_alpha,
        d_gamma=d_gamma,
        d_w0=dw,
        initial_weights=from_fixed(state.weights, problem.radix_bits, dtype),
    )


def _hessian_vector(leaf: Tensor, g: Tensor, vector: Tensor) -> Tensor:
    """∇²L · vector by differentiating g · vector once more (zero where g is constant)."""
    if not g.requires_grad:
        return torch.zeros_like(vector)
    (hv,) = torch.autograd.grad(g, leaf, grad_outputs=vector, allow_unused=True, materialize_grads=True)
    return hv


def hypergradient(problem: ReversibleProblem, w0: Tensor, schedule: Schedule) -> Hypergradient:
    """Train from ``w0`` with ``schedule``, then reverse: the exact df/dα, df/dγ, df/dw0."""
    return reverse_hypergradient(problem, train_reversibly(problem, w0, schedule), schedule, w0.dtype)


def validation_loss(problem: ReversibleProblem, w0: Tensor, schedule: Schedule) -> float:
    """f(w_T) after the exact forward run, without reversing it."""
    state = train_reversibly(problem, w0, schedule)
    with torch.no_grad():
        return float(problem.loss(from_fixed(state.weights, problem.radix_bits, w0.dtype), problem.val_batch))


class ScheduleTuner:
    """Hypergradient descent on a schedule, one round at a time, resumable from its state.

    Each :meth:`step` takes one Adam step on log α and logit γ (rates stay positive and
    decays in (0, 1) without clipping; Adam moves each by about ``meta_lr`` per round
    whatever the hypergradient's scale, so at the default a rate changes by ~10 % a round).
    The paper fixes none of this: its experiments tune the hyperparameters by gradient steps
    on the validation loss, the parametrisation and step rule are this module's choice.
    """

    def __init__(self, schedule: Schedule, meta_lr: float = DEFAULT_META_LR, tune_gamma: bool = True) -> None:
        self.log_alpha = schedule.alpha.detach().to(torch.float64).log()
        edge = 1.0 / RATIO_DENOMINATOR  # γ = 1 has no logit: start from the closest quantised γ below it
        self.logit_gamma = torch.logit(schedule.gamma.detach().to(torch.float64).clamp(edge, 1 - edge))
        self.fixed_gamma = None if tune_gamma else schedule.gamma
        tuned = [self.log_alpha, self.logit_gamma] if tune_gamma else [self.log_alpha]
        self.optimizer = torch.optim.Adam(tuned, lr=meta_lr)
        self.schedule = schedule

    def step(self, result: Hypergradient) -> Schedule:
        """Move the schedule against ``result``'s hypergradients (computed at :attr:`schedule`)."""
        current = self.schedule
        self.log_alpha.grad = (result.d_alpha * current.alpha).to(torch.float64)  # chain rule through exp
        self.logit_gamma.grad = (result.d_gamma * current.gamma * (1 - current.gamma)).to(torch.float64)
        self.optimizer.step()
        gamma = torch.sigmoid(self.logit_gamma.detach()) if self.fixed_gamma is None else self.fixed_gamma
        self.schedule = Schedule(self.log_alpha.detach().exp(), gamma)
        return self.schedule

    def state_dict(self) -> dict[str, Any]:
        """The schedule, its parameters and Adam's moments: a round resumed continues exactly."""
        return {
            "log_alpha": self.log_alpha.clone(), "logit_gamma": self.logit_gamma.clone(),
            "alpha": self.schedule.alpha.clone(), "gamma": self.schedule.gamma.clone(),
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.log_alpha.copy_(state["log_alpha"])
        self.logit_gamma.copy_(state["logit_gamma"])
        self.schedule = Schedule(state["alpha"].clone(), state["gamma"].clone())
        self.optimizer.load_state_dict(state["optimizer"])


def meta_optimize(
    problem: ReversibleProblem,
    w0: Tensor,
    schedule: Schedule,
    meta_iters: int,
    meta_lr: float = DEFAULT_META_LR,
    tune_gamma: bool = True,
) -> MetaResult:
    """``meta_iters`` rounds of hypergradient descent on the schedule (the paper's Sec. 3),
    each Algorithm 1 then 2 and one :class:`ScheduleTuner` step.

    The result is the schedule after the last round (not the best one seen: see
    ``history``) and its validation loss.
    """
    if meta_iters < 0:
        raise ValueError(f"meta_iters must be at least 0, got {meta_iters}")
    tuner, history = ScheduleTuner(schedule, meta_lr, tune_gamma), list[MetaRound]()
    for _ in range(meta_iters):
        result = hypergradient(problem, w0, tuner.schedule)
        history.append(MetaRound(tuner.schedule, result.val_loss, result.d_alpha, result.d_gamma))
        tuner.step(result)
    return MetaResult(tuner.schedule, validation_loss(problem, w0, tuner.schedule), history)
