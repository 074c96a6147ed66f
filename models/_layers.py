"""Layer choices shared by the zoo's convolutional families: 1-D signals or images.

One architecture serves both MNIST-1D (an example is ``[L]``, or ``[C, L]`` with
channels) and images (``[C, H, W]``); only the layer types differ. Each family asks
:func:`conv_layers` for them once and writes its blocks once, instead of keeping a 1-D
and a 2-D copy of the same network in step.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn


@dataclass(frozen=True, slots=True)
class ConvLayers:
    """The layer types for one kind of input, and how many channels it has."""

    conv: type[nn.Module]
    batch_norm: type[nn.Module]
    max_pool: type[nn.Module]
    global_pool: type[nn.Module]
    in_channels: int


def conv_layers(input_shape: tuple[int, ...]) -> ConvLayers:
    """1-D layers for ``[L]`` and ``[C, L]``, 2-D layers for ``[C, H, W]``."""
    if len(input_shape) == 3:
        return ConvLayers(nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d, input_shape[0])
    if len(input_shape) in (1, 2):
        channels = input_shape[0] if len(input_shape) == 2 else 1
        return ConvLayers(nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d, nn.AdaptiveAvgPool1d, channels)
    raise ValueError(
        f"expected one example shaped [L], [C, L] or [C, H, W]; got input_shape {tuple(input_shape)}"
    )


def with_channel_axis(x: Tensor) -> Tensor:
    """``[B, L]`` becomes ``[B, 1, L]`` (a plain signal is one channel); other shapes pass."""
    return x.unsqueeze(1) if x.dim() == 2 else x


def init_for_relu(body: nn.Module) -> None:
    """He initialisation for the layers of a ReLU body, so that plain SGD starts well.

    PyTorch's default init shrinks the signal at every ReLU layer; He's keeps its scale.
    Normalisation layers start as the identity. The output layer is not part of ``body``
    and keeps its default, small init.
    """
    for module in body.modules():
        if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
