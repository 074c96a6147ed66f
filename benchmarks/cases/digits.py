"""The small-images case of ``benchmarks/fidelity.py``: scikit-learn's 8x8 digits.

``digits_datasets`` is a ``python:`` data source (1797 real 8x8 grey images of the ten
digits, shipped inside scikit-learn, so nothing is downloaded): 80 % to train, 20 % to
validate, split by a fixed seed. The architectures go from a linear classifier to a
small residual network with BatchNorm. scikit-learn is a benchmark-only dependency.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.utils.data import TensorDataset

SPLIT_SEED = 0  # the split stays the same whatever the study's seed, so every run sees the same data


def digits_datasets() -> tuple[TensorDataset, TensorDataset]:
    """Images ``[1, 8, 8]`` scaled to [0, 1], labels 0-9."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise RuntimeError("the digits case needs scikit-learn: pip install scikit-learn") from None
    digits = load_digits()
    images = torch.tensor(digits.data, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
    labels = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(SPLIT_SEED))
    cut = round(0.8 * len(labels))
    train, val = order[:cut], order[cut:]
    return TensorDataset(images[train], labels[train]), TensorDataset(images[val], labels[val])


def _he(body: nn.Module) -> None:
    for module in body.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)


class MLP(nn.Module):
    def __init__(self, num_classes: int, input_shape: tuple[int, ...], widths: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        features = math.prod(input_shape)
        for width in widths:
            layers += [nn.Linear(features, width), nn.ReLU()]
            features = width
        self.body = nn.Sequential(*layers)
        _he(self.body)
        self.head = nn.Linear(features, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


def _conv(in_channels: int, out_channels: int, norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(out_channels))
    return [*layers, nn.ReLU()]


class CNN(nn.Module):
    """Conv blocks of ``widths`` channels, a 2x2 max-pool after the first, global pooling, Linear head."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...], widths: tuple[int, ...], norm: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = input_shape[0]
        for index, width in enumerate(widths):
            layers += _conv(channels, width, norm)
            if index == 0:
                layers.append(nn.MaxPool2d(2))
            channels = width
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        _he(self.body)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


class ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(x + self.block(x))


class TinyResNet(nn.Module):
    """A conv stem with BatchNorm, a 2x2 max-pool, two residual blocks, pooling, Linear head."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...], width: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_conv(input_shape[0], width, norm=True), nn.MaxPool2d(2),
            ResBlock(width), ResBlock(width), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        _he(self.body)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


class Linear(nn.Module):
    """Multinomial logistic regression on the 64 pixels."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.head = nn.Linear(math.prod(input_shape), num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.flatten(x))


def linear(num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    return Linear(num_classes, input_shape)


def mlp_narrow(num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    return MLP(num_classes, input_shape, widths=(32,))


def mlp_wide(num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    return MLP(num_classes, input_shape, widths=(256, 256))


def cnn(num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    return CNN(num_classes, input_shape, widths=(16, 32), norm=False)


def cnn_bn(num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    return CNN(num_classes, input_shape, widths=(16, 32), norm=True)


def cnn_bn_wide(num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    return CNN(num_classes, input_shape, widths=(32, 64, 64), norm=True)


def resnet_tiny(num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    return TinyResNet(num_classes, input_shape)

