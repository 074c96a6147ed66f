"""The MLR-SNet schedule network: a small LSTM that maps the training loss to a rate.

Shu et al., "MLR-SNet: Transferable LR Schedules for Heterogeneous Tasks", Sec. 3.2,
Eq. (7) (the paper prints it as one block; here it is written line by line)::

    [i_t; f_t; o_t; g_t] = [σ; σ; σ; tanh]( W2 [ReLU; ReLU]( W1 [h_{t-1}; L_t] ) )
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
    h_t = o_t ⊙ tanh(c_t)
    p_t = σ(W3 h_t)
    α_t = γ · p_t

The two stacked ReLUs say that W1 preprocesses its two inputs separately ("the input
h_{t-1} and the training loss L_t are preprocessed by a fully-connected layer W1 with
ReLU", Sec. 3.2): W1 is block-diagonal, one block reads the previous hidden state, the
other the scalar loss, each giving ``hidden_size`` features. W2 then maps both (2·H
features) to the four gates, which is where the net "works as LSTM". Every linear map has
a bias (the paper's "fully-connected layer"); the paper omits biases from the equation.

Defaults from the paper: ``hidden_size=40`` ("the size of hidden nodes is set as 40",
App. B) and ``gamma=1.0`` (footnote 1: "γ = 1 for image tasks, and γ = 40 for text
tasks"). Initialisation is PyTorch's default ("The initialization of MLR-SNet follows the
default setting in Pytorch", App. B).

The hidden state ``(h, c)`` is kept in two buffers, so ``state_dict()`` carries it and a
resumed run predicts exactly the rates the uninterrupted run would have.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

LSTMState = tuple[Tensor, Tensor]

DEFAULT_HIDDEN_SIZE = 40  # App. B
DEFAULT_GAMMA = 1.0  # footnote 1, image tasks


class ScheduleNet(nn.Module):
    """A(L_t; θ) of Eq. (6)-(7): one training loss in, one learning rate in [0, γ] out.

    ``forward`` is pure (state in, state out), so the meta step of Algorithm 1 can try a
    rate without moving the schedule along; :meth:`advance` is the per-step call that
    keeps the new state.
    """

    h: Tensor
    c: Tensor

    def __init__(self, hidden_size: int = DEFAULT_HIDDEN_SIZE, gamma: float = DEFAULT_GAMMA) -> None:
        super().__init__()
        if hidden_size < 1:
            raise ValueError(f"hidden_size must be at least 1, got {hidden_size}")
        if not gamma > 0:
            raise ValueError(f"gamma (the largest rate) must be positive, got {gamma}")
        self.hidden_size = hidden_size
        self.gamma = float(gamma)
        self.w1_hidden = nn.Linear(hidden_size, hidden_size)  # W1, block reading h_{t-1}
        self.w1_loss = nn.Linear(1, hidden_size)  # W1, block reading L_t
        self.w2 = nn.Linear(2 * hidden_size, 4 * hidden_size)  # gates i, f, o, g in that order
        self.w3 = nn.Linear(hidden_size, 1)
        self.register_buffer("h", torch.zeros(hidden_size))
        self.register_buffer("c", torch.zeros(hidden_size))

    def config(self) -> dict[str, float | int]:
        """What it takes to rebuild this net before loading its weights."""
        return {"hidden_size": self.hidden_size, "gamma": self.gamma}

    def state(self) -> LSTMState:
        """The carried hidden state (h_{t-1}, c_{t-1})."""
        return self.h, self.c

    def forward(self, loss: Tensor, state: LSTMState) -> tuple[Tensor, LSTMState]:
        """Eq. (7) for one step: the rate α_t (0-d) and the new state (h_t, c_t)."""
        h_prev, c_prev = state
        features = torch.cat([torch.relu(self.w1_hidden(h_prev)), torch.relu(self.w1_loss(loss.reshape(1)))])
        i, f, o, g = self.w2(features).chunk(4)
        c = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        p = torch.sigmoid(self.w3(h))
        return self.gamma * p.reshape(()), (h, c)

    @torch.no_grad()
    def advance(self, loss: Tensor) -> Tensor:
        """Predict this step's rate from the training loss and carry the state on.

        The state is stored without its graph: gradients reach θ through the current step
        only (the online approximation of Sec. 3.2, which does not unroll past steps).
        """
        rate, (h, c) = self(loss.detach().to(self.h), self.state())  # the net's dtype and device
        self.h.copy_(h)
        self.c.copy_(c)
        return rate

    def reset_state(self) -> None:
        """Start a new run (meta-test on a new task starts from a zero state)."""
        self.h.zero_()
        self.c.zero_()
