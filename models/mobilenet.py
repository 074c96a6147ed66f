"""A small MobileNet (v2-style), for 1-D signals ``[L]`` / ``[C, L]`` and images ``[C, H, W]``.

Built from inverted residual blocks: a 1x1 convolution expands the channels, a
depthwise 3x3 convolution (one filter per channel) filters them cheaply, a 1x1
convolution projects them back with no activation, and a residual connection joins
blocks that keep the shape. All convolutions are followed by BatchNorm.
"""

from __future__ import annotations

from torch import Tensor, nn

from ._layers import ConvLayers, conv_layers, init_for_relu, with_channel_axis


def conv_bn_relu6(layers: ConvLayers, in_channels: int, out_channels: int, kernel_size: int,
                  stride: int = 1, groups: int = 1) -> list[nn.Module]:
    """Convolution (no bias: BatchNorm has one), BatchNorm, ReLU6."""
    return [
        layers.conv(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2,
                    groups=groups, bias=False),
        layers.batch_norm(out_channels),
        nn.ReLU6(),
    ]


class InvertedResidual(nn.Module):
    """Expand (1x1), depthwise filter (3x3, ``stride``), project (1x1, linear); add the input when shapes match."""

    def __init__(self, layers: ConvLayers, in_channels: int, out_channels: int, stride: int,
                 expansion: int) -> None:
        super().__init__()
        hidden = in_channels * expansion
        parts: list[nn.Module] = []
        if expansion != 1:
            parts += conv_bn_relu6(layers, in_channels, hidden, kernel_size=1)
        parts += conv_bn_relu6(layers, hidden, hidden, kernel_size=3, stride=stride, groups=hidden)
        parts += [layers.conv(hidden, out_channels, 1, bias=False), layers.batch_norm(out_channels)]
        self.block = nn.Sequential(*parts)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        return x + out if self.residual else out


class MobileNetSmall(nn.Module):
    """Stem, four inverted residual blocks (two of them halve the resolution), 1x1 conv, pooling, head."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...], width: int = 16, expansion: int = 4) -> None:
        super().__init__()
        layers = conv_layers(input_shape)
        # (output channels, stride, expansion) of each block, MobileNetV2's pattern scaled down.
        plan = [
            (width, 1, 1),
            (width * 2, 2, expansion),
            (width * 2, 1, expansion),
            (width * 4, 2, expansion),
        ]
        body: list[nn.Module] = conv_bn_relu6(layers, layers.in_channels, width, kernel_size=3)
        channels = width
        for out_channels, stride, block_expansion in plan:
            body.append(InvertedResidual(layers, channels, out_channels, stride, block_expansion))
            channels = out_channels
        body += conv_bn_relu6(layers, channels, 8 * width, kernel_size=1)
        body += [layers.global_pool(1), nn.Flatten()]
        self.features = nn.Sequential(*body)
        init_for_relu(self.features)
        self.head = nn.Linear(8 * width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(with_channel_axis(x)))


def mobilenet_small(num_classes: int, input_shape: tuple[int, ...], width: int = 16, expansion: int = 4) -> nn.Module:
    return MobileNetSmall(num_classes, input_shape, width=width, expansion=expansion)
