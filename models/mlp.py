"""A multilayer perceptron: the baseline every other architecture should beat.

Any example shape works: it is flattened first (``[40]`` for MNIST-1D, ``[3, 32, 32]``
for small images).
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from ._layers import init_for_relu


class MLP(nn.Module):
    """Flatten, ``depth`` hidden Linear + ReLU layers of ``width`` units, Linear head."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...], width: int = 128, depth: int = 3) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        layers: list[nn.Module] = [nn.Flatten()]
        in_features = math.prod(input_shape)
        for _ in range(depth):
            layers += [nn.Linear(in_features, width), nn.ReLU()]
            in_features = width
        self.body = nn.Sequential(*layers)
        init_for_relu(self.body)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


def mlp(num_classes: int, input_shape: tuple[int, ...], width: int = 128, depth: int = 3) -> nn.Module:
    return MLP(num_classes, input_shape, width=width, depth=depth)
