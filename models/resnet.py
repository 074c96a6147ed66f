"""A small ResNet with BatchNorm, for 1-D signals ``[L]`` / ``[C, L]`` and images ``[C, H, W]``.

CIFAR-style: a 3x3 stem, three stages of basic residual blocks with ``width``,
``2 * width`` and ``4 * width`` channels (the last two halve the resolution), global
average pooling, a Linear head. The last BatchNorm of each block starts at zero, so every
block starts as the identity: a deep stack then trains with plain SGD from the start.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ._layers import ConvLayers, conv_layers, init_for_relu, with_channel_axis


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm, added to a shortcut, then ReLU."""

    def __init__(self, layers: ConvLayers, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = layers.conv(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = layers.batch_norm(out_channels)
        self.conv2 = layers.conv(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.bn2 = layers.batch_norm(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                layers.conv(in_channels, out_channels, 1, stride, bias=False),
                layers.batch_norm(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNetSmall(nn.Module):
    """Stem, three stages of ``blocks_per_stage`` basic blocks, pooling, Linear head."""

    def __init__(
        self, num_classes: int, input_shape: tuple[int, ...], width: int = 16, blocks_per_stage: int = 1
    ) -> None:
        super().__init__()
        if blocks_per_stage < 1:
            raise ValueError(f"blocks_per_stage must be at least 1, got {blocks_per_stage}")
        layers = conv_layers(input_shape)
        body: list[nn.Module] = [
            layers.conv(layers.in_channels, width, 3, padding=1, bias=False),
            layers.batch_norm(width),
            nn.ReLU(),
        ]
        channels = width
        for stage, stride in enumerate((1, 2, 2)):
            out_channels = width * 2**stage
            for block in range(blocks_per_stage):
                body.append(BasicBlock(layers, channels, out_channels, stride if block == 0 else 1))
                channels = out_channels
        body += [layers.global_pool(1), nn.Flatten()]
        self.features = nn.Sequential(*body)
        init_for_relu(self.features)
        for module in self.features.modules():
            if isinstance(module, BasicBlock):
                nn.init.zeros_(module.bn2.weight)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(with_channel_axis(x)))


def resnet_small(
    num_classes: int, input_shape: tuple[int, ...], width: int = 16, blocks_per_stage: int = 1
) -> nn.Module:
    return ResNetSmall(num_classes, input_shape, width=width, blocks_per_stage=blocks_per_stage)
