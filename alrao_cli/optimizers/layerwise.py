"""Discriminative layer-wise rates: one parameter group per layer, its rate set by depth.

The layer-wise discussion (Smith, post #43, "Manual method 1") proposes a high rate for the
lowest layers and a low one for the highest, interpolated in between. Two rules are given:

- :func:`layerwise_param_groups`: geometric, ``lr = base_lr * decay ** depth_from_output``
  (the output layer gets ``base_lr``; ``decay > 1`` is Smith's direction, faster input
  layers; ``decay < 1`` is the fine-tuning habit of slower early layers);
- :func:`interpolated_param_groups`: Smith's linear interpolation from ``input_lr`` at the
  first layer to ``output_lr`` at the last.

A "layer" is a module that directly owns trainable parameters (``recurse=False``); depth
order is the order ``model.named_modules()`` visits them, i.e. registration order, which
is input-to-output for ``nn.Sequential`` and for models that define their layers in
forward order (a model that registers its head first gets it counted first). A shared
parameter belongs to the first module that owns it. Each group carries its module's
qualified name under ``"layer"`` for reporting.
"""

from __future__ import annotations

from torch import nn


def parameterised_modules(model: nn.Module) -> list[tuple[str, list[nn.Parameter]]]:
    """The modules owning trainable parameters, in depth order, with those parameters."""
    seen: set[int] = set()
    layers = []
    for name, module in model.named_modules():
        params = [p for p in module.parameters(recurse=False) if p.requires_grad and id(p) not in seen]
        seen.update(id(p) for p in params)
        if params:
            layers.append((name, params))
    if not layers:
        raise ValueError(f"{type(model).__name__} has no trainable parameters")
    return layers


def layerwise_param_groups(model: nn.Module, base_lr: float, decay: float) -> list[dict]:
    """Param groups with ``lr = base_lr * decay ** depth_from_output`` (output layer: 0)."""
    layers = parameterised_modules(model)
    last = len(layers) - 1
    return [
        {"params": params, "lr": base_lr * decay ** (last - i), "layer": name}
        for i, (name, params) in enumerate(layers)
    ]


def interpolated_param_groups(model: nn.Module, input_lr: float, output_lr: float) -> list[dict]:
    """Param groups whose rate goes linearly from ``input_lr`` (first layer) to
    ``output_lr`` (last layer); a single layer gets ``output_lr``."""
    layers = parameterised_modules(model)
    last = len(layers) - 1
    return [
        {"params": params, "lr": output_lr + (input_lr - output_lr) * (last - i) / max(last, 1), "layer": name}
        for i, (name, params) in enumerate(layers)
    ]
