"""The screen's Alrao step is the library's: one code path, the same numbers bit for bit."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from alrao_cli.alrao import AlraoModel, AlraoSGD, alrao_step
from alrao_cli.study.methods import get_method
from alrao_cli.study.methods.base import LearnerContext
from alrao_cli.study.spec import AlraoOptions, MethodSpec


def tiny() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(40, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10))


@pytest.mark.parametrize("momentum", [0.0, 0.9], ids=["plain", "momentum"])
def test_the_learners_step_equals_alrao_step_bit_for_bit(momentum):
    x = torch.randn(32, 40, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 10, (32,), generator=torch.Generator().manual_seed(1))
    options = AlraoOptions(lr_min=1e-3, lr_max=1.0, copies=4, momentum=momentum)
    learner = get_method("alrao").learner(
        tiny(), MethodSpec("alrao", options=options), LearnerContext(10, "classification", seed=5, example_input=x[:2])
    )
    library = AlraoModel(tiny(), 10, lr_min=1e-3, lr_max=1.0, n_copies=4, seed=5, example_input=x[:2])
    library.load_state_dict(copy.deepcopy(learner.module.state_dict()))
    optimizer = AlraoSGD(library, momentum=momentum)
    for _ in range(3):
        screen_loss = learner.train_step(x, y)
        library_loss = alrao_step(library, optimizer, x, y)
        assert float(screen_loss) == library_loss
    for (name, ours), theirs in zip(learner.module.state_dict().items(), library.state_dict().values()):
        if isinstance(ours, torch.Tensor):
            assert torch.equal(ours, theirs), name
    assert torch.equal(learner.module.switch.posterior, library.switch.posterior)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_validation_with_the_copies_gives_the_mixtures_losses_bit_for_bit(task):
    """Validation reads the copies' losses in the same pass: the ranking's figure must not move."""
    x = torch.randn(32, 40, generator=torch.Generator().manual_seed(0))
    classes = 10 if task == "classification" else 1
    y = torch.randint(0, 10, (32,)) if task == "classification" else torch.randn(32)
    model = tiny() if task == "classification" else nn.Sequential(nn.Linear(40, 16), nn.ReLU(), nn.Linear(16, 1))
    learner = get_method("alrao").learner(
        model, MethodSpec("alrao", options=AlraoOptions(lr_min=1e-3, lr_max=1.0, copies=4)),
        LearnerContext(classes, task, seed=5, example_input=x[:2]),
    )
    learner.train_step(x, y)  # a posterior that is not uniform
    learner.module.eval()
    losses, labels = learner.evaluate(x, y)
    with_copies, same_labels, copy_losses = learner.evaluate_with_copies(x, y)
    assert torch.equal(with_copies, losses)
    assert (labels is None and same_labels is None) or torch.equal(labels, same_labels)
    assert copy_losses.shape == (32, 4) and torch.equal(copy_losses, -learner.module.copies.log_likelihoods(
        learner.module.features(x), y, regression=task == "regression"))
