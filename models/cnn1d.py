"""A 1-D convolutional network for MNIST-1D and other 1-D signals.

An example ``[40]`` is read as one channel of length 40 (``[C, L]`` inputs keep their
C channels). Three Conv1d + BatchNorm1d + ReLU blocks, the last two halving the length,
then global average pooling and a Linear head.
"""

from __future__ import annotations

from torch import Tensor, nn

from ._layers import init_for_relu, with_channel_axis


def conv_block(in_channels: int, out_channels: int, kernel_size: int, stride: int) -> nn.Sequential:
    """Conv1d (no bias: BatchNorm has one) + BatchNorm1d + ReLU, keeping length / stride."""
    return nn.Sequential(
        nn.Conv1d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2, bias=False),
        nn.BatchNorm1d(out_channels),
        nn.ReLU(),
    )


class CNN1d(nn.Module):
    """Conv blocks of ``width``, ``2 * width``, ``2 * width`` channels, pooled, Linear head."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...], width: int = 32) -> None:
        super().__init__()
        if len(input_shape) not in (1, 2):
            raise ValueError(f"cnn1d reads 1-D examples [L] or [C, L]; got input_shape {tuple(input_shape)}")
        in_channels = input_shape[0] if len(input_shape) == 2 else 1
        self.features = nn.Sequential(
            conv_block(in_channels, width, kernel_size=5, stride=1),
            conv_block(width, 2 * width, kernel_size=3, stride=2),
            conv_block(2 * width, 2 * width, kernel_size=3, stride=2),
            nn.AdaptiveAvgPool1d(1),
            nn.Flatten(),
        )
        init_for_relu(self.features)
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(with_channel_axis(x)))


def cnn1d(num_classes: int, input_shape: tuple[int, ...], width: int = 32) -> nn.Module:
    return CNN1d(num_classes, input_shape, width=width)
