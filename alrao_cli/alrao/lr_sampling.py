"""Per-feature learning rates for the pre-classifier (paper, section 2).

Each *feature* (a unit of a Linear layer, an output channel of a convolution, a hidden
unit of a recurrent layer...) draws one rate ``lr ~ logU(lr_min, lr_max)``, once. All the
weights that compute that feature (its incoming weights and its bias) share that rate,
so a feature is either fast or slow as a whole, which is what lets the network keep its
useful units (paper, section 3).

A rate is stored as one tensor per parameter, shaped to broadcast against it, so that the
optimizer's update is a single ``p -= rate * grad`` with no loop over features.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

logger = logging.getLogger(__name__)

Granularity = Literal["feature", "weight"]

_NORM_LAYERS = (
    nn.modules.batchnorm._NormBase,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.RMSNorm,
)
_RECURRENT_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


@dataclass(frozen=True, slots=True)
class ParamRate:
    """The rate tensor of one parameter and the kind of feature it was drawn for."""

    name: str  # the parameter's qualified name inside the module
    rate: Tensor  # float32, broadcastable against the parameter
    feature: str  # "unit", "channel", "hidden unit", "dimension", "element" or "tensor"


class LogUniformSampler:
    """Draws log-uniform rates from one seeded generator, so a seed fixes every rate."""

    def __init__(self, lr_min: float, lr_max: float, generator: torch.Generator) -> None:
        if not 0 < lr_min <= lr_max:
            raise ValueError(f"need 0 < lr_min <= lr_max, got {lr_min} and {lr_max}")
        self.log_min = math.log(lr_min)
        self.log_max = math.log(lr_max)
        self.generator = generator

    def __call__(self, n: int) -> Tensor:
        u = torch.rand(n, generator=self.generator, dtype=torch.float64)
        return torch.exp(self.log_min + u * (self.log_max - self.log_min)).float()


def sample_feature_lrs(
    module: nn.Module,
    lr_min: float = 1e-5,
    lr_max: float = 10.0,
    *,
    seed: int = 0,
    per: Granularity = "feature",
) -> list[ParamRate]:
    """Draw one rate tensor for every trainable parameter of ``module``.

    ``per="feature"`` is the paper's method; ``per="weight"`` gives every scalar weight its
    own rate (the paper's Appendix E variant). Modules are visited once even when shared,
    and a parameter tied between two modules gets the rates of the first one that owns it,
    so the same tensor never receives two different sets of rates. A parameter whose module
    has no notion of feature gets one rate for the whole tensor, and a notice is logged.
    """
    sample = LogUniformSampler(lr_min, lr_max, torch.Generator().manual_seed(seed))
    assigned: dict[int, ParamRate] = {}
    for module_name, child in module.named_modules():
        own = dict(child.named_parameters(recurse=False))
        if not own:
            continue
        prefix = f"{module_name}." if module_name else ""
        for local_name, rate, feature in _rates_for(child, own, sample, per):
            param = own[local_name]
            if id(param) in assigned or not param.requires_grad:
                continue
            if feature == "tensor" and param.numel() > 1:
                logger.info(
                    "parameter %s%s (%s) has no per-feature rule: one rate for the whole tensor",
                    prefix, local_name, type(child).__name__,
                )
            assigned[id(param)] = ParamRate(prefix + local_name, rate, feature)
    return list(assigned.values())


def _rates_for(
    module: nn.Module, own: dict[str, nn.Parameter], sample: LogUniformSampler, per: Granularity
) -> Iterator[tuple[str, Tensor, str]]:
    """Yield ``(local name, rate tensor, feature kind)`` for the module's own parameters."""
    if per == "weight":
        for name, param in own.items():
            yield name, sample(param.numel()).view(param.shape), "element"
        return
    rule = _rule_for(module)
    handled: set[str] = set()
    if rule is not None:
        for name, rate, feature in rule(module, own, sample):
            handled.add(name)
            yield name, rate, feature
    for name in own:
        if name not in handled:
            yield name, sample(1).view([1] * own[name].dim()), "tensor"


def _rule_for(module: nn.Module) -> Callable | None:
    if isinstance(module, nn.Linear):
        return _linear_rates
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return _transposed_conv_rates
    if isinstance(module, nn.modules.conv._ConvNd):
        return _conv_rates
    if isinstance(module, _NORM_LAYERS):
        return _elementwise_rates
    if isinstance(module, nn.RNNBase):
        return _recurrent_rates
    if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
        return _embedding_rates
    if isinstance(module, nn.MultiheadAttention):
        return _attention_rates
    return None


def _per_output(weight: Tensor, rates: Tensor) -> Tensor:
    """Shape ``rates[out]`` to broadcast along dim 0 of ``weight``."""
    return rates.view([-1] + [1] * (weight.dim() - 1))


def _linear_rates(module, own, sample, feature: str = "unit"):
    r = sample(own["weight"].shape[0])
    yield "weight", _per_output(own["weight"], r), feature
    if "bias" in own:
        yield "bias", r, feature


def _conv_rates(module, own, sample):
    # weight [out, in/g, *k]: the output channel is dim 0, as a Linear's unit is.
    return _linear_rates(module, own, sample, feature="channel")


def _transposed_conv_rates(module, own, sample):
    # weight [in, out/g, *k]: output channel c = group * (out/g) + j sits at dim 1 of the
    # rows of its group, so each group's rows see their own slice of the channel rates.
    weight = own["weight"]
    groups = module.groups
    in_per_group = weight.shape[0] // groups
    out_per_group = weight.shape[1]
    r = sample(out_per_group * groups)
    per_row = r.view(groups, 1, out_per_group).expand(groups, in_per_group, out_per_group)
    rate = per_row.reshape(weight.shape[0], out_per_group, *([1] * (weight.dim() - 2)))
    if groups == 1:
        rate = rate[:1]  # identical rows: keep one and let it broadcast
    yield "weight", rate.contiguous(), "channel"
    if "bias" in own:
        yield "bias", r, "channel"


def _elementwise_rates(module, own, sample):
    # Norm affine parameters: weight and bias of one channel (or element) act as a unit.
    reference = own.get("weight", own.get("bias"))
    r = sample(reference.numel()).view(reference.shape)
    for name in ("weight", "bias"):
        if name in own:
            yield name, r, "channel"


def _recurrent_rates(module: nn.RNNBase, own, sample):
    # One rate per hidden unit of each layer and direction, shared by its gates: the
    # weights are stacked [gates * hidden, ...], so the unit's rate repeats per gate.
    gates = _RECURRENT_GATES[module.mode]
    hidden = module.hidden_size
    directions = 2 if module.bidirectional else 1
    for layer in range(module.num_layers):
        for direction in range(directions):
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            r = sample(hidden).repeat(gates)
            for name in ("weight_ih", "weight_hh"):
                yield name + suffix, r.view(-1, 1), "hidden unit"
            for name in ("bias_ih", "bias_hh"):
                if name + suffix in own:
                    yield name + suffix, r, "hidden unit"
            if module.proj_size > 0:
                # The projection h = W_hr c is its own layer of proj_size units.
                yield "weight_hr" + suffix, sample(module.proj_size).view(-1, 1), "unit"


def _embedding_rates(module, own, sample):
    weight = own["weight"]
    yield "weight", sample(weight.shape[1]).view(1, -1), "dimension"


def _attention_rates(module: nn.MultiheadAttention, own, sample):
    # The input projections are Linear maps stored as raw parameters; out_proj is a Linear
    # submodule and gets its rates from the Linear rule.
    if "in_proj_weight" in own:
        r = sample(own["in_proj_weight"].shape[0])
        yield "in_proj_weight", r.view(-1, 1), "unit"
        if "in_proj_bias" in own:
            yield "in_proj_bias", r, "unit"
        return
    rates = {}
    for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
        rates[name] = sample(own[name].shape[0])
        yield name, rates[name].view(-1, 1), "unit"
    if "in_proj_bias" in own:
        yield "in_proj_bias", torch.cat(list(rates.values())), "unit"
