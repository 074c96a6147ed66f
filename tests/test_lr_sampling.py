"""Per-feature rates: one rate per feature, shared by everything that computes it."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from alrao_cli import sample_feature_lrs
from alrao_cli.alrao import reference

LR_MIN, LR_MAX = 1e-5, 10.0


def rates_by_name(module, **kwargs):
    return {e.name: e for e in sample_feature_lrs(module, LR_MIN, LR_MAX, **kwargs)}


def per_weight_rates(module, **kwargs) -> dict[str, torch.Tensor]:
    """The sampler's rate of every scalar weight: its rate tensors broadcast to the parameters."""
    params = dict(module.named_parameters())
    entries = rates_by_name(module, **kwargs)
    return {name: entry.rate.expand_as(params[name]) for name, entry in entries.items()}


def incoming_weights(layer: nn.Module, x: torch.Tensor, channel: int) -> torch.Tensor:
    """Which entries of ``layer.weight`` change output channel ``channel``: found by autograd."""
    out = layer(x)
    (grad,) = torch.autograd.grad(out[:, channel].abs().sum(), layer.weight)
    return grad != 0


LAYERS = [
    ("linear", nn.Linear(6, 5), torch.randn(4, 6)),
    ("conv1d", nn.Conv1d(4, 6, 3), torch.randn(2, 4, 9)),
    ("conv2d-groups", nn.Conv2d(4, 6, 3, groups=2), torch.randn(2, 4, 7, 7)),
    ("conv3d", nn.Conv3d(2, 3, 2), torch.randn(1, 2, 4, 4, 4)),
    ("convT1d", nn.ConvTranspose1d(3, 4, 3), torch.randn(2, 3, 5)),
    ("convT2d-groups", nn.ConvTranspose2d(4, 6, 3, groups=2), torch.randn(2, 4, 5, 5)),
]


SOURCES = {"sampler": per_weight_rates, "reference": lambda m: reference.feature_rates(m, LR_MIN, LR_MAX)}


@pytest.mark.parametrize("source", SOURCES.values(), ids=list(SOURCES))
@pytest.mark.parametrize("name, layer, x", LAYERS, ids=[case[0] for case in LAYERS])
def test_a_features_incoming_weights_and_bias_share_one_rate(name, layer, x, source):
    """Against autograd, which knows which weights compute which output channel."""
    rates = source(layer)
    weight_rates, bias_rates = rates["weight"], rates["bias"]
    n_out = layer.bias.shape[0]
    for channel in range(n_out):
        mask = incoming_weights(layer, x, channel)
        assert mask.any()
        feature_rates = weight_rates[mask]
        assert torch.all(feature_rates == bias_rates[channel]), f"channel {channel}"
    assert len(set(bias_rates.tolist())) == n_out  # distinct features drew distinct rates


class Shared(nn.Module):
    """A shared layer, a weight tied between an embedding and a Linear, and a frozen layer."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(6, 4)
        self.block = nn.Linear(4, 4)
        self.frozen = nn.Linear(4, 3).requires_grad_(False)
        self.stack = nn.Sequential(self.block, nn.ReLU(), self.block)
        self.out = nn.Linear(4, 6, bias=False)
        self.out.weight = self.embed.weight


class ExtraParameter(nn.Linear):
    """A Linear with a parameter the Linear rule does not know: one rate for the tensor."""

    def __init__(self):
        super().__init__(3, 2)
        self.gain = nn.Parameter(torch.ones(2, 2))


MODULES = {
    "linear": lambda: nn.Linear(6, 5),
    "linear without bias": lambda: nn.Linear(6, 5, bias=False),
    "conv1d": lambda: nn.Conv1d(4, 6, 3),
    "conv2d groups": lambda: nn.Conv2d(4, 6, 3, groups=2),
    "conv3d without bias": lambda: nn.Conv3d(2, 3, 2, bias=False),
    "convT1d": lambda: nn.ConvTranspose1d(3, 4, 3),
    "convT2d groups": lambda: nn.ConvTranspose2d(4, 6, 3, groups=2),
    "convT3d groups without bias": lambda: nn.ConvTranspose3d(6, 3, 2, groups=3, bias=False),
    "batchnorm2d": lambda: nn.BatchNorm2d(5),
    "groupnorm": lambda: nn.GroupNorm(2, 6),
    "layernorm 2d": lambda: nn.LayerNorm([3, 4]),
    "layernorm without bias": lambda: nn.LayerNorm(4, bias=False),
    "instancenorm affine": lambda: nn.InstanceNorm1d(4, affine=True),
    "rmsnorm": lambda: nn.RMSNorm(5),
    "rnn": lambda: nn.RNN(3, 4, num_layers=2),
    "rnn relu without bias": lambda: nn.RNN(3, 4, nonlinearity="relu", bias=False),
    "lstm bidirectional": lambda: nn.LSTM(3, 5, num_layers=2, bidirectional=True),
    "lstm projection": lambda: nn.LSTM(3, 6, proj_size=2, bidirectional=True),
    "gru": lambda: nn.GRU(3, 4, num_layers=2),
    "embedding": lambda: nn.Embedding(7, 4),
    "embeddingbag": lambda: nn.EmbeddingBag(7, 3),
    "attention": lambda: nn.MultiheadAttention(8, 2),
    "attention kdim vdim bias_kv": lambda: nn.MultiheadAttention(8, 2, kdim=3, vdim=5, add_bias_kv=True),
    "shared, tied and frozen": Shared,
    "unknown parameter": ExtraParameter,
    "a small cnn": lambda: nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(16, 3)
    ),
}


@pytest.mark.parametrize("per", ["feature", "weight"])
@pytest.mark.parametrize("make", MODULES.values(), ids=list(MODULES))
def test_the_sampler_draws_what_a_feature_by_feature_loop_draws(make, per):
    """The vectorised sampler against the reference, which draws one feature at a time."""
    module = make()
    fast = per_weight_rates(module, seed=7, per=per)
    slow = reference.feature_rates(module, LR_MIN, LR_MAX, seed=7, per=per)
    assert list(fast) == list(slow)
    for name in fast:
        assert torch.equal(fast[name], slow[name]), name
    assert not any(rate.isnan().any() for rate in slow.values())  # every scalar weight has a rate


def test_rates_lie_in_range_and_their_logs_are_uniform():
    layer = nn.Linear(2, 20_000)
    rate = rates_by_name(layer)["bias"].rate
    assert rate.min() >= LR_MIN and rate.max() <= LR_MAX
    u = ((rate.double().log() - math.log(LR_MIN)) / (math.log(LR_MAX) - math.log(LR_MIN))).sort().values
    n = u.numel()
    empirical_hi = torch.arange(1, n + 1, dtype=torch.float64) / n
    empirical_lo = torch.arange(0, n, dtype=torch.float64) / n
    ks = max((empirical_hi - u).max().item(), (u - empirical_lo).max().item())
    assert ks < 1.63 / math.sqrt(n)  # Kolmogorov-Smirnov at the 1 % level


def test_norm_layers_share_rate_between_weight_and_bias_per_channel():
    for norm in [nn.BatchNorm2d(5), nn.GroupNorm(2, 6), nn.LayerNorm([3, 4]), nn.InstanceNorm1d(4, affine=True)]:
        rates = rates_by_name(norm)
        assert rates["weight"].rate.shape == norm.weight.shape
        assert torch.equal(rates["weight"].rate, rates["bias"].rate)
        assert rates["weight"].rate.unique().numel() == norm.weight.numel()


@pytest.mark.parametrize("cell, gates", [(nn.LSTM, 4), (nn.GRU, 3), (nn.RNN, 1)])
def test_recurrent_gates_share_the_rate_of_their_hidden_unit(cell, gates):
    hidden = 5
    layer = cell(3, hidden, num_layers=2, bidirectional=True)
    rates = rates_by_name(layer)
    assert set(rates) == {n for n, _ in layer.named_parameters()}
    units_seen = []
    for suffix in ["_l0", "_l0_reverse", "_l1", "_l1_reverse"]:
        ih = rates["weight_ih" + suffix].rate.expand_as(getattr(layer, "weight_ih" + suffix))
        hh = rates["weight_hh" + suffix].rate.expand_as(getattr(layer, "weight_hh" + suffix))
        per_gate = ih[:, 0].view(gates, hidden)
        assert torch.all(per_gate == per_gate[0])  # every gate of unit u has unit u's rate
        assert torch.all(ih == ih[:, :1]) and torch.all(hh == ih[:, :1])
        assert torch.equal(rates["bias_ih" + suffix].rate, ih[:, 0])
        assert torch.equal(rates["bias_hh" + suffix].rate, ih[:, 0])
        units_seen.append(per_gate[0])
    assert torch.cat(units_seen).unique().numel() == 4 * hidden  # each layer/direction draws its own


def test_lstm_projection_units_get_their_own_rates():
    layer = nn.LSTM(3, 6, proj_size=2)
    rates = rates_by_name(layer)
    assert rates["weight_hr_l0"].rate.shape == (2, 1)
    assert rates["weight_hh_l0"].rate.shape == (24, 1)


def test_embedding_rates_per_dimension_and_attention_per_output_unit():
    embedding = nn.Embedding(7, 4)
    rate = rates_by_name(embedding)["weight"].rate
    assert rate.shape == (1, 4)
    attention = nn.MultiheadAttention(8, 2)
    rates = rates_by_name(attention)
    assert rates["in_proj_weight"].rate.shape == (24, 1)
    assert torch.equal(rates["in_proj_bias"].rate, rates["in_proj_weight"].rate.view(-1))
    assert rates["out_proj.weight"].rate.shape == (8, 1)


def test_every_parameter_gets_a_rate_and_unknown_ones_get_one_per_tensor(caplog):
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(3, 2))
            self.fc = nn.Linear(2, 2)

    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), Odd())
    with caplog.at_level("INFO"):
        rates = rates_by_name(model)
    assert set(rates) == {n for n, _ in model.named_parameters()}
    assert rates["2.scale"].feature == "tensor" and rates["2.scale"].rate.numel() == 1
    assert "2.scale" in caplog.text
    for name, param in model.named_parameters():
        rates[name].rate.expand_as(param)  # broadcastable


def test_a_shared_module_gets_one_set_of_rates():
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    entries = sample_feature_lrs(model, LR_MIN, LR_MAX)
    assert [e.name for e in entries] == ["0.weight", "0.bias"]


def test_tied_weights_get_one_rate_tensor():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(10, 4)
            self.out = nn.Linear(4, 10, bias=False)
            self.out.weight = self.embed.weight

    entries = sample_feature_lrs(Tied(), LR_MIN, LR_MAX)
    assert [e.name for e in entries] == ["embed.weight"]


def test_per_weight_variant_gives_every_scalar_its_rate():
    layer = nn.Linear(5, 3)
    rates = rates_by_name(layer, per="weight")
    assert rates["weight"].rate.shape == (3, 5)
    assert rates["weight"].rate.unique().numel() == 15


def test_same_seed_same_rates_other_seed_other_rates():
    model = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 3))
    a = [e.rate for e in sample_feature_lrs(model, seed=3)]
    b = [e.rate for e in sample_feature_lrs(model, seed=3)]
    c = [e.rate for e in sample_feature_lrs(model, seed=4)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])
