"""Layer-wise parameter groups: which parameters form a layer, in what order, at what rate."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from alrao_cli.optimizers import interpolated_param_groups, layerwise_param_groups


def mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))


@pytest.mark.parametrize(
    "decay, want",
    [(0.5, [0.0125, 0.025, 0.05, 0.1]), (2.0, [0.8, 0.4, 0.2, 0.1]), (1.0, [0.1] * 4)],
    ids=["slower-inputs", "faster-inputs", "flat"],
)
def test_rates_follow_depth_from_the_output(decay, want):
    model = mlp()
    groups = layerwise_param_groups(model, base_lr=0.1, decay=decay)
    assert [g["lr"] for g in groups] == pytest.approx(want, rel=1e-12)
    assert [g["layer"] for g in groups] == ["0", "2", "3", "4"]
    for group, index in zip(groups, ["0", "2", "3", "4"]):
        module = model.get_submodule(index)
        assert group["params"] == [module.weight, module.bias]


def test_interpolation_is_linear_from_input_to_output():
    groups = interpolated_param_groups(mlp(), input_lr=0.4, output_lr=0.1)
    assert [g["lr"] for g in groups] == pytest.approx([0.4, 0.3, 0.2, 0.1], rel=1e-12)


def test_a_single_layer_gets_the_output_rate():
    groups = interpolated_param_groups(nn.Linear(2, 2), input_lr=0.4, output_lr=0.1)
    assert [g["lr"] for g in groups] == [0.1]
    assert groups[0]["layer"] == ""


def test_frozen_layers_do_not_count():
    model = mlp()
    model[0].requires_grad_(False)
    groups = layerwise_param_groups(model, base_lr=1.0, decay=0.5)
    assert [g["layer"] for g in groups] == ["2", "3", "4"]
    assert [g["lr"] for g in groups] == [0.25, 0.5, 1.0]


def test_shared_parameters_go_to_their_first_layer_once():
    embed = nn.Embedding(5, 3)
    head = nn.Linear(3, 5, bias=False)
    head.weight = embed.weight  # tied input and output weights
    model = nn.Sequential(embed, nn.Linear(3, 3), head)
    groups = layerwise_param_groups(model, base_lr=0.1, decay=0.5)
    assert [g["layer"] for g in groups] == ["0", "1"]
    optimizer = torch.optim.SGD(groups, lr=0.1)  # torch refuses a parameter in two groups
    assert optimizer.param_groups[0]["params"] == [embed.weight]
    assert optimizer.param_groups[0]["layer"] == "0"


def test_a_model_without_trainable_parameters_is_refused():
    with pytest.raises(ValueError, match="no trainable parameters"):
        layerwise_param_groups(nn.ReLU(), base_lr=0.1, decay=0.5)
