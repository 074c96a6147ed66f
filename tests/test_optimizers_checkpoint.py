"""Every stateful optimizer resumes from a checkpoint bit for bit, rates included."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from alrao_cli.optimizers import LARC, SGDHD, SGDMLHD, AdamHD, AdamMLHD

CASES = [
    pytest.param(SGDHD, dict(lr=0.05, hyper_lr=0.01), id="sgd-hd"),
    pytest.param(AdamHD, dict(lr=0.01, hyper_lr=1e-4), id="adam-hd"),
    pytest.param(SGDMLHD, dict(lr=0.05, hyper_lr=0.01, combo_lr=0.1), id="sgd-mlhd"),
    pytest.param(AdamMLHD, dict(lr=0.01, hyper_lr=1e-4, combo_lr=1e-2), id="adam-mlhd"),
    pytest.param(LARC, dict(lr=0.1, trust_coefficient=0.02, mode="scale", weight_decay=1e-3), id="lars"),
    pytest.param(LARC, dict(lr=0.1, trust_coefficient=0.02, mode="clip", weight_decay=1e-3), id="larc"),
]


def make_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))


def batches(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(16, 5, generator=g), torch.randint(0, 3, (16,), generator=g)) for _ in range(n)]


def train(model: nn.Module, optimizer: torch.optim.Optimizer, data) -> None:
    for x, y in data:
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()


def rates(optimizer: torch.optim.Optimizer):
    """Whatever rates the optimizer reports, as plain values to compare exactly."""
    if isinstance(optimizer, LARC):
        return optimizer.local_lrs()
    if isinstance(optimizer, (SGDMLHD, AdamMLHD)):
        return optimizer.rates()
    return optimizer.current_lrs()


@pytest.mark.parametrize("optimizer_cls, kwargs", CASES)
def test_resuming_from_a_checkpoint_is_bit_for_bit(optimizer_cls, kwargs):
    data = batches(7)
    model = make_model(0)
    optimizer = optimizer_cls(model.parameters(), **kwargs)
    train(model, optimizer, data[:3])
    at_save = rates(optimizer)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
    train(model, optimizer, data[3:])  # uninterrupted

    buffer.seek(0)
    checkpoint = torch.load(buffer)
    resumed = make_model(1)  # other initial weights: everything must come from the checkpoint
    resumed.load_state_dict(checkpoint["model"])
    resumed_optimizer = optimizer_cls(resumed.parameters(), **kwargs)
    resumed_optimizer.load_state_dict(checkpoint["optimizer"])
    assert rates(resumed_optimizer) == at_save
    train(resumed, resumed_optimizer, data[3:])

    for p, q in zip(model.parameters(), resumed.parameters()):
        assert torch.equal(p, q)
    assert rates(resumed_optimizer) == rates(optimizer)
    assert rates(optimizer) != at_save  # the rates moved after the checkpoint, so the check has teeth
