"""Recurrent sequence classifiers: an LSTM and a GRU read the example step by step.

How an example becomes a sequence of steps:

- ``[L]`` (MNIST-1D's ``[40]``): L steps of 1 feature;
- ``[C, L]``: L steps of C features;
- ``[C, H, W]`` (an image): H steps (rows) of C * W features.

The last layer's final hidden state goes to a Linear head.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn



def features_per_step(input_shape: tuple[int, ...]) -> int:
    """How many numbers the network reads at each step, for one example of this shape."""
    if len(input_shape) == 1:
        return 1
    if len(input_shape) == 2:
        return input_shape[0]
    if len(input_shape) == 3:
        return input_shape[0] * input_shape[2]
    raise ValueError(f"expected one example shaped [L], [C, L] or [C, H, W]; got input_shape {tuple(input_shape)}")


def as_sequence(x: Tensor) -> Tensor:
    """A batch of examples as ``[B, steps, features]`` (see the module docstring)."""
    if x.dim() == 2:
        return x.unsqueeze(-1)
    if x.dim() == 3:
        return x.transpose(1, 2)
    return x.permute(0, 2, 1, 3).flatten(2)


class RecurrentClassifier(nn.Module):
    """An ``nn.LSTM`` or ``nn.GRU`` over the steps; its last hidden state feeds the Linear head."""

    def __init__(self, cell: type[nn.RNNBase], num_classes: int, input_shape: tuple[int, ...],
                 hidden_size: int = 64, num_layers: int = 1) -> None:
        super().__init__()
        self.rnn = cell(features_per_step(input_shape), hidden_size, num_layers, batch_first=True)
        init_to_remember(self.rnn)
        self.head = nn.Linear(hidden_size, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        _, state = self.rnn(as_sequence(x))
        hidden = state[0] if isinstance(state, tuple) else state  # an LSTM also returns its cell state
        return self.head(hidden[-1])


@torch.no_grad()
def init_to_remember(rnn: nn.LSTM | nn.GRU) -> None:
    """Init that lets plain SGD train over 40 steps, where PyTorch's default stays at chance.

    Each gate's recurrent weights start orthogonal (the state keeps its norm from step to
    step) and the gate that keeps the old state (the LSTM's forget gate, the GRU's update
    gate: the second of the stacked gates in both) starts with bias 1, so that the
    network remembers by default and gradients reach the early steps.
    """
    hidden = rnn.hidden_size
    for name, parameter in rnn.named_parameters():
        if name.startswith("weight_hh"):
            for gate in parameter.split(hidden):
                nn.init.orthogonal_(gate)
        elif name.startswith("bias"):
            nn.init.zeros_(parameter)
            if name.startswith("bias_ih"):
                parameter[hidden : 2 * hidden].fill_(1.0)


def lstm(num_classes: int, input_shape: tuple[int, ...], hidden_size: int = 64, num_layers: int = 1) -> nn.Module:
    return RecurrentClassifier(nn.LSTM, num_classes, input_shape, hidden_size, num_layers)


def gru(num_classes: int, input_shape: tuple[int, ...], hidden_size: int = 64, num_layers: int = 1) -> nn.Module:
    return RecurrentClassifier(nn.GRU, num_classes, input_shape, hidden_size, num_layers)
