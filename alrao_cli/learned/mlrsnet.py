"""MLR-SNet training: the schedule net drives plain SGD, and learns online in meta-train.

Shu et al., "MLR-SNet: Transferable LR Schedules for Heterogeneous Tasks", Sec. 3.2:

* meta-train (Algorithm 1): at every step the net reads the minibatch's training loss
  and gives SGD its rate. Every ``t_val`` steps, before the SGD step, the net first takes
  one Adam step on the validation loss at the one-step look-ahead weights
  ŵ_{t+1}(θ) = w_t - A(L_t; θ) · ∇L_t(w_t) (Eq. 10), i.e. on ∇_θ L^Val(ŵ_{t+1}(θ)) (Eq. 9);
  the model then steps with the rate of the *updated* net, A(L_t; θ_{t+1}) (Eq. 11).
* meta-test (Eq. 12): a meta-trained net, frozen, gives SGD its rate; nothing learns
  but the model.

The SGD the net drives is ``torch.optim.SGD`` with the paper's settings, and the
look-ahead of Eq. (10) repeats that same update (momentum buffer and weight decay
included, as the official code does) so that what θ is trained for is the step the
model really takes. With ``momentum=0`` and ``weight_decay=0`` it is Eq. (10) verbatim.

Defaults, from the paper:

* ``meta_lr=1e-3``, ``meta_weight_decay=1e-4``: Adam "with a LR of 1e-3, and a weight
  decay of 1e-4" (App. B), other Adam settings "as originally recommended".
* ``t_val=100``: text tasks update the net "every 100 batches" (App. B); image tasks
  update it "twice per epoch", which depends on the data set: pass
  ``batches_per_epoch // 2`` there.
* ``momentum=0.0``: the net schedules vanilla SGD (Eq. 3, 6; Sec. 4.1 "not using
  extra historical gradient information").
* ``weight_decay=5e-4``: the image tasks' "SGD with a weight decay 5e-4" (App. C).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from alrao_cli.learned.net_file import load_schedule_net, save_schedule_net
from alrao_cli.learned.schedule_net import ScheduleNet

__all__ = [
    "MLRSNetSGD",
    "MLRSNetTrainer",
    "ScheduleNet",
    "load_schedule_net",
    "save_schedule_net",
]

LossFn = Callable[[Tensor, Tensor], Tensor]
MetaBatchFn = Callable[[], tuple[Tensor, Tensor]]

DEFAULT_META_LR = 1e-3  # App. B
DEFAULT_META_WEIGHT_DECAY = 1e-4  # App. B
DEFAULT_T_VAL = 100  # App. B (text tasks)
DEFAULT_MOMENTUM = 0.0  # Eq. (3), (6): vanilla SGD
DEFAULT_WEIGHT_DECAY = 5e-4  # App. C


class _NetDrivenSGD:
    """``torch.optim.SGD`` on ``model`` whose rate, each step, is ``net``'s prediction.

    Shared by meta-train and meta-test: the SGD step of Eq. (11) and (12) and the
    checkpoint of everything that step depends on.
    """

    def __init__(
        self, model: nn.Module, net: ScheduleNet, momentum: float, weight_decay: float, loss_fn: LossFn
    ) -> None:
        self.model = model
        self.net = net
        self.loss_fn = loss_fn
        self._params = {name: p for name, p in model.named_parameters() if p.requires_grad}
        self.optimizer = torch.optim.SGD(
            self._params.values(), lr=0.0, momentum=momentum, weight_decay=weight_decay
        )
        self.steps = 0
        self.current_lr: float | None = None  # the rate of the last step taken

    def _loss_and_grads(self, x: Tensor, y: Tensor) -> tuple[Tensor, tuple[Tensor, ...]]:
        """L_t on the minibatch and ∇_w L_t(w_t), computed once for the whole step."""
        with torch.enable_grad():
            loss = self.loss_fn(self.model(x), y)
            return loss.detach(), torch.autograd.grad(loss, tuple(self._params.values()))

    def _sgd_step(self, loss: Tensor, grads: tuple[Tensor, ...]) -> None:
        """w_{t+1} = SGD step at rate A(L_t; θ) (Eq. 11 and 12); the net's state moves on."""
        self.current_lr = float(self.net.advance(loss))
        for group in self.optimizer.param_groups:
            group["lr"] = self.current_lr
        for p, g in zip(self._params.values(), grads):
            p.grad = g
        self.optimizer.step()
        self.steps += 1

    def state_dict(self) -> dict[str, Any]:
        """Model, net (with its hidden state), SGD state (momentum buffers) and step count."""
        return {
            "model": self.model.state_dict(),
            "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "steps": self.steps,
            "current_lr": self.current_lr,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue exactly where the run that saved ``state`` stopped."""
        self.model.load_state_dict(state["model"])
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.steps = state["steps"]
        self.current_lr = state["current_lr"]


class MLRSNetSGD(_NetDrivenSGD):
    """Meta-test (Eq. 12): a frozen, meta-trained net schedules plain SGD on a new task.

    ``net`` is typically :func:`load_schedule_net`'s result; its parameters are frozen
    here, only its hidden state moves.
    """

    def __init__(
        self,
        model: nn.Module,
        net: ScheduleNet,
        momentum: float = DEFAULT_MOMENTUM,
        weight_decay: float = DEFAULT_WEIGHT_DECAY,
        loss_fn: LossFn = F.cross_entropy,
    ) -> None:
        net.requires_grad_(False)
        super().__init__(model, net, momentum, weight_decay, loss_fn)

    def step(self, x: Tensor, y: Tensor) -> Tensor:
        """One SGD step on the minibatch; returns its loss L_t (detached, 0-d)."""
        loss, grads = self._loss_and_grads(x, y)
        self._sgd_step(loss, grads)
        return loss


class MLRSNetTrainer(_NetDrivenSGD):
    """Meta-train (Algorithm 1): the model trains with SGD while the net learns online."""

    def __init__(
        self,
        model: nn.Module,
        net: ScheduleNet,
        meta_lr: float = DEFAULT_META_LR,
        t_val: int = DEFAULT_T_VAL,
        momentum: float = DEFAULT_MOMENTUM,
        weight_decay: float = DEFAULT_WEIGHT_DECAY,
        meta_weight_decay: float = DEFAULT_META_WEIGHT_DECAY,
        loss_fn: LossFn = F.cross_entropy,
    ) -> None:
        if t_val < 1:
            raise ValueError(f"t_val (steps between meta updates) must be at least 1, got {t_val}")
        super().__init__(model, net, momentum, weight_decay, loss_fn)
        self.t_val = t_val
        self.meta_optimizer = torch.optim.Adam(net.parameters(), lr=meta_lr, weight_decay=meta_weight_decay)

    def step(self, x: Tensor, y: Tensor, meta_batch_fn: MetaBatchFn) -> Tensor:
        """One iteration of Algorithm 1; returns the minibatch's loss L_t (detached, 0-d).

        ``meta_batch_fn`` gives a validation minibatch D_m; it is called only on the
        steps that update the net (every ``t_val``-th step: t_val, 2·t_val, ...).
        """
        loss, grads = self._loss_and_grads(x, y)
        if (self.steps + 1) % self.t_val == 0:
            x_meta, y_meta = meta_batch_fn()
            self.meta_optimizer.zero_grad()
            self._lookahead_loss(loss, grads, x_meta, y_meta).backward()  # Eq. (9)
            self.meta_optimizer.step()
        self._sgd_step(loss, grads)
        return loss

    def meta_loss(self, x: Tensor, y: Tensor, x_meta: Tensor, y_meta: Tensor) -> Tensor:
        """L^Val(D_m, ŵ_{t+1}(θ)) of Eq. (9) at the current weights, differentiable in θ.

        Changes nothing: neither the model, nor the net's state, nor any optimizer.
        """
        loss, grads = self._loss_and_grads(x, y)
        return self._lookahead_loss(loss, grads, x_meta, y_meta)

    def _lookahead_loss(
        self, loss: Tensor, grads: tuple[Tensor, ...], x_meta: Tensor, y_meta: Tensor
    ) -> Tensor:
        """Eq. (10) then the validation loss at ŵ_{t+1}(θ); the graph reaches θ via the rate.

        ∇_w L_t does not depend on θ, so it enters as a constant (no second order term).
        The net's state is read, not advanced: the step's state transition happens once,
        in the real SGD step with θ_{t+1}.
        """
        rate, _ = self.net(loss.to(self.net.h), self.net.state())
        lookahead = {
            name: p.detach() - rate * direction
            for (name, p), direction in zip(self._params.items(), self._sgd_directions(grads))
        }
        buffers = {name: b.clone() for name, b in self.model.named_buffers()}  # no side effect on BN stats
        outputs = functional_call(self.model, {**buffers, **lookahead}, (x_meta,))
        return self.loss_fn(outputs, y_meta)

    @torch.no_grad()
    def _sgd_directions(self, grads: tuple[Tensor, ...]) -> list[Tensor]:
        """What ``torch.optim.SGD`` would multiply by -lr this step (weight decay, momentum)."""
        group = self.optimizer.param_groups[0]
        momentum, weight_decay = group["momentum"], group["weight_decay"]
        directions = []
        for p, g in zip(self._params.values(), grads):
            d = g + weight_decay * p if weight_decay else g
            buffer = self.optimizer.state.get(p, {}).get("momentum_buffer") if momentum else None
            directions.append(momentum * buffer + d if buffer is not None else d)
        return directions

    def state_dict(self) -> dict[str, Any]:
        """Everything of :class:`MLRSNetSGD`'s, plus the net's Adam state."""
        return {**super().state_dict(), "meta_optimizer": self.meta_optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue exactly where the run that saved ``state`` stopped."""
        super().load_state_dict(state)
        self.meta_optimizer.load_state_dict(state["meta_optimizer"])
