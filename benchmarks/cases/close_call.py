"""The close-call case of ``benchmarks/fidelity.py``: variants of one 1-D conv family on MNIST-1D.

Every variant is the zoo's ``cnn1d`` pattern (a wide first convolution, then convolutions
that halve the length, global average pooling, one Linear head) with one thing changed:
the width (32, 48, 64), the depth (two or four extra blocks), or residual connections
around the extra blocks. Their tuned losses lie close together, so choosing among them is
a decision a screen can get wrong. A pilot (SGD at rates 0.1 and 1, one seed, 10 epochs)
put their best validation losses between 0.100 and 0.143; variants without BatchNorm were
left out, at 0.17-0.24 (and diverging at rate 1), too far from the others for a close call.
The class keeps ``norm=False`` for trying them.
"""

from __future__ import annotations

from torch import Tensor, nn


def _conv(in_channels: int, out_channels: int, kernel_size: int, stride: int, norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv1d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2, bias=not norm)
    ]
    if norm:
        layers.append(nn.BatchNorm1d(out_channels))
    layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Residual(nn.Module):
    """``x + block(x)``: the block keeps the channels and the length."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


class ConvFamily(nn.Module):
    """A stem of ``width`` channels, two blocks that double the channels and halve the length,
    then ``extra`` blocks that keep both (residual if asked), pooling and a Linear head."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...], width: int = 32, extra: int = 0,
                 norm: bool = True, residual: bool = False) -> None:
        super().__init__()
        in_channels = input_shape[0] if len(input_shape) == 2 else 1
        channels = 2 * width
        blocks: list[nn.Module] = [
            _conv(in_channels, width, 5, 1, norm),
            _conv(width, channels, 3, 2, norm),
            _conv(channels, channels, 3, 2, norm),
        ]
        for _ in range(extra):
            block = _conv(channels, channels, 3, 1, norm)
            blocks.append(Residual(block) if residual else block)
        self.features = nn.Sequential(*blocks, nn.AdaptiveAvgPool1d(1), nn.Flatten())
        for module in self.features.modules():
            if isinstance(module, nn.Conv1d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x.unsqueeze(1) if x.dim() == 2 else x))


def conv_w32(num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    """The zoo's cnn1d, written in this family's terms."""
    return ConvFamily(num_classes, input_shape, width=32)


def conv_w48(num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    return ConvFamily(num_classes, input_shape, width=48)


def conv_w64(num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    return ConvFamily(num_classes, input_shape, width=64)


def conv_w32_deep(num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    return ConvFamily(num_classes, input_shape, width=32, extra=2)


def conv_w32_res(num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    return ConvFamily(num_classes, input_shape, width=32, extra=2, residual=True)


def conv_w48_res(num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    return ConvFamily(num_classes, input_shape, width=48, extra=2, residual=True)


def conv_w48_res4(num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    return ConvFamily(num_classes, input_shape, width=48, extra=4, residual=True)
