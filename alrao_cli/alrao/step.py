"""One Alrao training step: forward, one backward, optimizer step, switch update."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from alrao_cli.alrao.model import AlraoModel
from alrao_cli.errors import AlraoDivergedError


def alrao_step(
    model: AlraoModel, optimizer: torch.optim.Optimizer, x: Tensor, y: Tensor
) -> float:
    """Train on one minibatch and return the mixture's loss.

    The prediction uses the switch posterior from before this minibatch (predict, then
    update), as the switch requires. Raises :class:`~alrao_cli.errors.AlraoDivergedError`
    (and leaves the parameters untouched) when the loss is not finite.
    """
    optimizer.zero_grad(set_to_none=True)
    loss = model.loss(x, y)
    value = float(loss.mixture_loss)
    if not math.isfinite(value):
        raise AlraoDivergedError(step=int(model.switch.steps) + 1, loss=value)
    loss.backward_loss.backward()
    optimizer.step()
    model.update_switch(loss.copy_log_likelihoods)
    return value
