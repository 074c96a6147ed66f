"""A small VGG with BatchNorm, for 1-D signals ``[L]`` / ``[C, L]`` and images ``[C, H, W]``.

Three conv-conv-pool blocks of ``width``, ``2 * width`` and ``4 * width`` channels (each
pool halves the resolution: 40 -> 5, or 32x32 -> 4x4), global average pooling, one
hidden Linear + ReLU layer and a Linear head.
"""

from __future__ import annotations

from torch import Tensor, nn

from ._layers import ConvLayers, conv_layers, init_for_relu, with_channel_axis


def conv_conv_pool(layers: ConvLayers, in_channels: int, out_channels: int) -> list[nn.Module]:
    """Two 3x3 convolutions with BatchNorm and ReLU, then 2x max pooling."""
    return [
        layers.conv(in_channels, out_channels, 3, padding=1, bias=False),
        layers.batch_norm(out_channels),
        nn.ReLU(),
        layers.conv(out_channels, out_channels, 3, padding=1, bias=False),
        layers.batch_norm(out_channels),
        nn.ReLU(),
        layers.max_pool(2),
    ]


class VGGSmall(nn.Module):
    """Conv-conv-pool blocks, pooling, a hidden Linear layer of ``8 * width`` units, Linear head."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...], width: int = 16) -> None:
        super().__init__()
        layers = conv_layers(input_shape)
        body: list[nn.Module] = []
        channels = layers.in_channels
        for out_channels in (width, 2 * width, 4 * width):
            body += conv_conv_pool(layers, channels, out_channels)
            channels = out_channels
        body += [layers.global_pool(1), nn.Flatten(), nn.Linear(channels, 8 * width), nn.ReLU()]
        self.features = nn.Sequential(*body)
        init_for_relu(self.features)
        self.head = nn.Linear(8 * width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(with_channel_axis(x)))


def vgg_small(num_classes: int, input_shape: tuple[int, ...], width: int = 16) -> nn.Module:
    return VGGSmall(num_classes, input_shape, width=width)
