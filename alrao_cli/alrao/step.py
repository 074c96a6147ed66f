"""One Alrao training step: forward, one backward, optimizer step, switch update.

The sequence after the forward lives in one place, :func:`apply_alrao_loss`, used both
by :func:`alrao_step` (which checks the loss on the host first) and by training loops
that must not wait for the device (they check divergence later, on the returned loss).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from alrao_cli.alrao.model import AlraoLoss, AlraoModel
from alrao_cli.errors import AlraoDivergedError


def apply_alrao_loss(model: AlraoModel, optimizer: torch.optim.Optimizer, loss: AlraoLoss) -> None:
    """Train on a minibatch whose loss ``model.loss(x, y)`` gave: switch, backward, step.

    Reads nothing back from the device, so an accelerator keeps running ahead; a caller
    that wants divergence caught before the step checks ``loss.mixture_loss`` first, as
    :func:`alrao_step` does.

    The switch is updated first, as soon as the loss is known: the numbers are the same
    as updating it after the optimizer step (the backward does not read the posterior,
    the loss already used the one from before this minibatch), and its few dozen scalar
    operations run while the caches still hold them, instead of after the step's large
    kernels: 1.5 % of an MLP step on a CPU.
    """
    model.update_switch(loss.copy_log_likelihoods)
    optimizer.zero_grad(set_to_none=True)
    loss.backward_loss.backward()
    optimizer.step()


def alrao_step(
    model: AlraoModel, optimizer: torch.optim.Optimizer, x: Tensor, y: Tensor
) -> float:
    """Train on one minibatch and return the mixture's loss.

    The prediction uses the switch posterior from before this minibatch (predict, then
    update), as the switch requires. Raises :class:`~alrao_cli.errors.AlraoDivergedError`
    (and leaves the parameters and the switch untouched) when the loss is not finite:
    that check reads the loss on the host, a synchronisation with the device at every
    step; :func:`apply_alrao_loss` is the same step without it.
    """
    loss = model.loss(x, y)
    value = float(loss.mixture_loss)
    if not math.isfinite(value):
        raise AlraoDivergedError(step=int(model.switch.steps) + 1, loss=value)
    apply_alrao_loss(model, optimizer, loss)
    return value
