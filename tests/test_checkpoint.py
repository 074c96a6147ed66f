"""The run checkpoint: what it holds, atomic saves, and the checkpoints that must not be resumed."""

from __future__ import annotations

import os
import random
from dataclasses import asdict

import numpy as np
import pytest
import torch
from torch import nn

from alrao_cli.results.records import EpochRecord
from alrao_cli.study.checkpoint import (
    CHECKPOINT_FORMAT,
    Checkpoint,
    RunPosition,
    UnusableCheckpoint,
    checkpoint_path,
    discard_checkpoint,
)
from alrao_cli.study.methods import get_method
from alrao_cli.study.methods.base import LearnerContext
from alrao_cli.study.spec import AlraoOptions, MethodSpec

X = torch.randn(8, 6, generator=torch.Generator().manual_seed(0))
Y = torch.arange(8) % 3
HISTORY = (
    EpochRecord(epoch=1, step=4, train_loss=1.1, train_acc=0.4, val_loss=1.05, val_acc=0.5, seconds=0.25,
                posterior=(0.5, 0.25, 0.25)),
    EpochRecord(epoch=2, step=8, train_loss=0.9, train_acc=None, val_loss=0.95, val_acc=None, seconds=0.5),
)
POSITION = RunPosition(epoch=2, batch=1, step=9, epoch_loss_sum=0.75, first_loss=1.2, elapsed=0.6, history=HISTORY)


def alrao_learner(seed: int):
    """The screen's Alrao learner on a small MLP, built from ``seed``."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    method = MethodSpec("alrao", options=AlraoOptions(lr_min=1e-3, lr_max=1.0, copies=3, momentum=0.5))
    return get_method("alrao").learner(model, method, LearnerContext(3, "classification", seed, example_input=X))


def trained_learner():
    learner = alrao_learner(0)
    for _ in range(3):
        learner.train_step(X, Y)
    return learner


def outputs(learner) -> torch.Tensor:
    learner.module.eval()
    with torch.no_grad():
        return learner.module(X)


def test_a_checkpoint_restores_learner_position_and_generators(tmp_path):
    checkpoint = Checkpoint(tmp_path / "run.pt", "mlp|alrao|seed=0", "abc")
    original = trained_learner()
    torch.manual_seed(5)
    random.seed(5)
    np.random.seed(5)
    checkpoint.save(original, POSITION)
    expected = (torch.rand(3), random.random(), np.random.rand())

    fresh = alrao_learner(1)
    assert not torch.equal(outputs(fresh), outputs(original))
    assert checkpoint.restore(fresh) == POSITION
    assert (torch.rand(3).tolist(), random.random(), np.random.rand()) == (expected[0].tolist(), *expected[1:])
    assert torch.equal(outputs(fresh), outputs(original))
    assert fresh.posterior() == original.posterior()
    torch.manual_seed(0)  # the optimizer's momentum came through: the next steps agree too
    fresh.train_step(X, Y)
    torch.manual_seed(0)
    original.train_step(X, Y)
    assert torch.equal(outputs(fresh), outputs(original))


def test_the_file_is_plain_data_and_tensors_with_the_documented_fields(tmp_path):
    checkpoint = Checkpoint(tmp_path / "run.pt", "key", "abc")
    checkpoint.save(trained_learner(), POSITION)
    saved = torch.load(checkpoint.path, weights_only=True)  # the safe loader reads all of it
    assert set(saved) == {
        "format", "key", "fingerprint", "learner", "epoch", "batch", "step", "epoch_loss_sum", "first_loss",
        "elapsed", "history", "start_checksum", "rng", "python_rng", "numpy_rng",
    }
    assert saved["format"] == CHECKPOINT_FORMAT and (saved["key"], saved["fingerprint"]) == ("key", "abc")
    assert saved["history"] == [record.to_dict() for record in HISTORY]


def test_without_a_file_there_is_nothing_to_restore(tmp_path):
    assert Checkpoint(tmp_path / "none.pt", "key", "abc").restore(alrao_learner(0)) is None


@pytest.mark.parametrize(
    ("key", "fingerprint", "reason"),
    [("other|alrao|seed=0", "abc", "another configuration"), ("key", "changed", "another configuration")],
    ids=["other-run", "other-settings"],
)
def test_a_checkpoint_of_another_run_or_configuration_is_refused(tmp_path, key, fingerprint, reason):
    Checkpoint(tmp_path / "run.pt", "key", "abc").save(trained_learner(), POSITION)
    fresh = alrao_learner(1)
    before = outputs(fresh)
    with pytest.raises(UnusableCheckpoint, match=reason):
        Checkpoint(tmp_path / "run.pt", key, fingerprint).restore(fresh)
    assert torch.equal(outputs(fresh), before)  # left untouched


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "cannot be read"), (b"not a checkpoint", "cannot be read"), ("half", "cannot be read")],
    ids=["empty", "garbage", "truncated"],
)
def test_an_unreadable_checkpoint_is_refused(tmp_path, content, reason):
    path = tmp_path / "run.pt"
    if content == "half":
        Checkpoint(path, "key", "abc").save(trained_learner(), POSITION)
        content = path.read_bytes()[: path.stat().st_size // 2]
    path.write_bytes(content)
    with pytest.raises(UnusableCheckpoint, match=reason):
        Checkpoint(path, "key", "abc").restore(alrao_learner(1))


def test_a_checkpoint_of_another_format_or_missing_a_field_is_refused(tmp_path):
    path = tmp_path / "run.pt"
    Checkpoint(path, "key", "abc").save(trained_learner(), POSITION)
    state = torch.load(path, weights_only=True)
    torch.save({**state, "format": CHECKPOINT_FORMAT + 1}, path)
    with pytest.raises(UnusableCheckpoint, match=f"format {CHECKPOINT_FORMAT + 1}"):
        Checkpoint(path, "key", "abc").restore(alrao_learner(1))
    torch.save({name: value for name, value in state.items() if name != "numpy_rng"}, path)
    with pytest.raises(UnusableCheckpoint, match="no numpy_rng"):
        Checkpoint(path, "key", "abc").restore(alrao_learner(1))


def test_a_checkpoint_written_before_the_format_was_recorded_still_resumes(tmp_path):
    """Older versions wrote the same fields, without ``format``, the history through ``asdict``."""
    path = tmp_path / "run.pt"
    Checkpoint(path, "key", "abc").save(trained_learner(), POSITION)
    state = torch.load(path, weights_only=True)
    del state["format"]
    state["history"] = [
        {**asdict(record), "posterior": None if record.posterior is None else list(record.posterior)}
        for record in HISTORY
    ]
    torch.save(state, path)
    assert Checkpoint(path, "key", "abc").restore(alrao_learner(1)) == POSITION


def test_restoring_without_the_generators_leaves_them_alone(tmp_path):
    checkpoint = Checkpoint(tmp_path / "run.pt", "key", "abc")
    checkpoint.save(trained_learner(), POSITION)
    fresh = alrao_learner(1)
    draws = []
    for restore in (False, True):
        torch.manual_seed(11)
        random.seed(11)
        np.random.seed(11)
        if restore:
            assert checkpoint.restore(fresh, generators=False) == POSITION
        draws.append((torch.rand(2).tolist(), random.random(), np.random.rand()))
    assert draws[0] == draws[1]


def test_a_failed_save_keeps_the_previous_checkpoint_and_leaves_no_temporary(tmp_path, monkeypatch):
    checkpoint = Checkpoint(tmp_path / "run.pt", "key", "abc")
    checkpoint.save(trained_learner(), POSITION)
    before = checkpoint.path.read_bytes()

    def full_disk(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        checkpoint.save(trained_learner(), RunPosition(step=99))
    assert checkpoint.path.read_bytes() == before
    assert os.listdir(tmp_path) == ["run.pt"]


def test_discard_removes_the_checkpoint_and_half_written_ones_only(tmp_path):
    path = checkpoint_path(tmp_path, "mlp|alrao|seed=0")
    Checkpoint(path, "mlp|alrao|seed=0", "abc").save(trained_learner(), POSITION)
    leftovers = [path.with_name(path.name + ".tmp"), path.with_name(f".{path.name}.k3j2x.tmp")]
    for leftover in leftovers:
        leftover.write_bytes(b"half")
    other = path.with_name("cnn1d_alrao_seed=0.pt")
    other.write_bytes(b"another run's")
    discard_checkpoint(path)
    assert sorted(p.name for p in path.parent.iterdir()) == [other.name]
    discard_checkpoint(path)  # nothing left to delete: no error


def test_a_long_key_gets_a_bounded_file_name_and_saves(tmp_path):
    key = "/".join(["a-very-deep-folder"] * 20) + "/model.py:Net|alrao|seed=0"
    path = checkpoint_path(tmp_path, key)
    assert len(path.name) < 255 and path.parent == tmp_path / "checkpoints"
    assert path != checkpoint_path(tmp_path, key.replace("seed=0", "seed=1"))
    Checkpoint(path, key, "abc").save(trained_learner(), POSITION)
    assert Checkpoint(path, key, "abc").restore(alrao_learner(1)) == POSITION
