"""The LR range test and the 1cycle schedule it feeds (Smith; the layer-wise discussion's
"Baseline 1: use of the global LR - 1cycle").

The range test trains for a fixed number of steps while the rate grows exponentially from
``start_lr`` to ``end_lr``, follows a smoothed loss and stops once training diverges. It
is a pure function of a ``step(lr) -> loss`` callable (:func:`range_test_step` makes one
from a model, an optimizer and batches), so it can be run on anything, including a
hand-made loss curve. The caller restores the model afterwards: the test wrecks it.

Suggestion rule: the rate of the lowest smoothed loss, divided by 10. The minimum is the
edge of stability (one step further and the loss climbs), so a tenth of it is an order of
magnitude inside the region where the loss still falls fast. Unlike the steepest-slope
rule it needs no derivative of a noisy curve: one argmin of the smoothed loss, stable
from run to run.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.optim.lr_scheduler import OneCycleLR


@dataclass(frozen=True)
class RangeTestResult:
    """What the range test saw, up to (not including) the step that diverged.

    ``diverged_at`` is the rate at which it stopped early (``None`` when it ran every
    step); ``suggested_lr`` is ``min_loss_lr / 10`` (module docstring).
    """

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    diverged_at: float | None
    min_loss_lr: float
    suggested_lr: float


def lr_range_test(
    step: Callable[[float], float],
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    smoothing: float = 0.98,
    diverge_factor: float = 4.0,
) -> RangeTestResult:
    """Sweep the rate exponentially, ``lr_i = start_lr * (end_lr/start_lr)^(i/(n-1))``.

    The smoothed loss is the bias-corrected moving average
    ``avg_i = smoothing * avg_{i-1} + (1 - smoothing) * loss_i``,
    ``smoothed_i = avg_i / (1 - smoothing^(i+1))`` (``smoothing=0``: the raw loss).
    The test stops at the first step whose loss is not finite or whose smoothed loss
    exceeds ``diverge_factor`` times the best smoothed loss so far; comparing the smoothed
    rather than the raw loss keeps one unlucky batch from ending it. The defaults (1e-7
    to 10 in 100 steps, 0.98, 4x) are those of fastai's ``lr_find``, which popularised
    Smith's test with an exponential sweep.
    """
    if not 0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr, got {start_lr} and {end_lr}")
    if num_steps < 2:
        raise ValueError(f"num_steps must be >= 2, got {num_steps}")
    if not 0 <= smoothing < 1:
        raise ValueError(f"smoothing must lie in [0, 1), got {smoothing}")
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    avg, best, diverged_at = 0.0, math.inf, None
    for i in range(num_steps):
        lr = start_lr * (end_lr / start_lr) ** (i / (num_steps - 1))
        loss = float(step(lr))
        if not math.isfinite(loss):
            diverged_at = lr
            break
        avg = smoothing * avg + (1 - smoothing) * loss
        value = avg / (1 - smoothing ** (i + 1))
        if value > diverge_factor * best:
            diverged_at = lr
            break
        best = min(best, value)
        lrs.append(lr)
        losses.append(loss)
        smoothed.append(value)
    if not lrs:
        raise ValueError(f"the loss diverged at the first rate tried ({start_lr}); lower start_lr")
    min_loss_lr = lrs[smoothed.index(min(smoothed))]
    return RangeTestResult(lrs, losses, smoothed, diverged_at, min_loss_lr, min_loss_lr / 10)


def range_test_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    batches: Iterable[tuple[Tensor, Tensor]],
) -> Callable[[float], float]:
    """A ``step(lr)`` for :func:`lr_range_test`: set every group's rate, train on the next
    batch (cycling through ``batches``, whose items are kept to be replayed: give it a
    list, or a loader no longer than the test) and return that batch's loss.

    The loss returned is the batch's loss before the step at ``lr``, as in every range
    test: it shows the effect of the rates tried so far.
    """
    stream = itertools.cycle(batches)

    def step(lr: float) -> float:
        for group in optimizer.param_groups:
            group["lr"] = lr
        inputs, targets = next(stream)
        optimizer.zero_grad()
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def one_cycle(
    optimizer: torch.optim.Optimizer,
    max_lr: float,
    total_steps: int,
    *,
    div_factor: float = 20.0,
    pct_start: float = 0.45,
    final_div_factor: float = 1e4,
) -> OneCycleLR:
    """Smith's 1cycle, as ``torch.optim.lr_scheduler.OneCycleLR`` (call ``.step()`` after
    every optimizer step).

    Three linear phases, which ``OneCycleLR(three_phase=True, anneal_strategy="linear")``
    is exactly: from ``max_lr / div_factor`` up to ``max_lr`` over ``pct_start`` of the
    steps, back down over as many, then to ``max_lr / (div_factor * final_div_factor)``
    over the rest ("annihilation"). Defaults: ``div_factor=20`` is the max/min ratio Smith
    gives in the layer-wise discussion (0.02/0.001 for a 3-layer net on CIFAR-10, 2/0.1
    for ResNet-50 on ImageNet); ``pct_start=0.45`` leaves the last 10% to the
    annihilation; ``final_div_factor=1e4`` is OneCycleLR's default. Momentum (or Adam's
    ``beta1``) cycles 0.95 -> 0.85 -> 0.95 against the rate when the optimizer has one
    (OneCycleLR's defaults, Smith's values); with no momentum it is left alone.
    """
    cycle_momentum = optimizer.defaults.get("momentum", 0) > 0 or "betas" in optimizer.defaults
    return OneCycleLR(
        optimizer, max_lr=max_lr, total_steps=total_steps, pct_start=pct_start, anneal_strategy="linear",
        div_factor=div_factor, final_div_factor=final_div_factor, three_phase=True, cycle_momentum=cycle_momentum,
    )
