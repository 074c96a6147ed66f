"""Per-feature rates: one rate per feature, shared by everything that computes it."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from alrao_cli import sample_feature_lrs

LR_MIN, LR_MAX = 1e-5, 10.0


def rates_by_name(module, **kwargs):
    return {e.name: e for e in sample_feature_lrs(module, LR_MIN, LR_MAX, **kwargs)}


def slow_reference_rates(param: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
    """The rate of every scalar weight, by broadcasting the rate tensor to the parameter."""
    return rate.expand_as(param)


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


@pytest.mark.parametrize("name, layer, x", LAYERS, ids=[case[0] for case in LAYERS])
def test_a_features_incoming_weights_and_bias_share_one_rate(name, layer, x):
    rates = rates_by_name(layer)
    weight_rates = slow_reference_rates(layer.weight, rates["weight"].rate)
    bias_rates = rates["bias"].rate.expand_as(layer.bias)
    n_out = layer.bias.shape[0]
    for channel in range(n_out):
        mask = incoming_weights(layer, x, channel)
        assert mask.any()
        feature_rates = weight_rates[mask]
        assert torch.all(feature_rates == bias_rates[channel]), f"channel {channel}"
    assert len(set(bias_rates.tolist())) == n_out  # distinct features drew distinct rates


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
