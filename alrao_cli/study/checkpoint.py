"""A run's checkpoint: what it takes to continue a run to the exact same numbers.

One file per run, ``RUN_DIR/checkpoints/<key as a file name>.pt``, written atomically
(a crash leaves the previous checkpoint or the new one, never half of one) and read
with ``torch.load(weights_only=True)``: it holds plain data and tensors only. A study's
checkpoint is written as every file of a run directory is (:mod:`alrao_cli.util.files`):
never through a link, and a full disk stops the study rather than failing the run.

What the file holds (a dict):

- ``key``, ``fingerprint``: whose checkpoint it is; one of another run, or of the same
  run with other settings, is ignored and the run starts afresh;
- ``format``: :data:`CHECKPOINT_FORMAT` (files written before it was recorded have the
  same layout and no ``format``: they read as format 1);
- ``learner``: the learner's ``state_dict()`` (model, optimizer, and for Alrao the switch);
- ``epoch``, ``batch``, ``step``, ``epoch_loss_sum``, ``first_loss``, ``elapsed``,
  ``history``: where the training loop stands (:class:`RunPosition`), the history as
  :meth:`~alrao_cli.results.records.EpochRecord.to_dict` writes it;
- ``rng``, ``python_rng``, ``numpy_rng`` and, on CUDA, ``cuda_rng``: every generator a
  model may draw from, as tensors and numbers.

The screen's training loop (:mod:`alrao_cli.study.train`) and ``alrao check``'s
serialize item both go through :class:`Checkpoint`, so that a passing check means a
screen's run of that model can be resumed.
"""

from __future__ import annotations

import glob
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from alrao_cli.results.records import EpochRecord
from alrao_cli.study.methods.base import Learner
from alrao_cli.study.spec import RunSpec
from alrao_cli.util.files import safe_name, write_atomic_with

CHECKPOINT_FORMAT = 1
CHECKPOINTS = "checkpoints"  # the folder of a run directory that holds them
_GENERATORS = ("rng", "python_rng", "numpy_rng")


def checkpoint_path(run_dir: Path, key: str) -> Path:
    """Where the run ``key`` of the study in ``run_dir`` keeps its checkpoint."""
    return run_dir / CHECKPOINTS / f"{safe_name(key)}.pt"


def discard_checkpoint(checkpoint: Path) -> None:
    """Delete a run's checkpoint and any half-written one a crash left beside it."""
    checkpoint.unlink(missing_ok=True)
    checkpoint.with_name(checkpoint.name + ".tmp").unlink(missing_ok=True)  # as older versions named them
    for temporary in checkpoint.parent.glob(f".{glob.escape(checkpoint.name)}.*.tmp"):  # atomic_file's
        temporary.unlink(missing_ok=True)


@dataclass(frozen=True, slots=True)
class RunPosition:
    """Where a run's training loop stands: what a checkpoint holds besides the learner and the generators."""

    epoch: int = 0  # epochs completed
    batch: int = 0  # batches done inside the current epoch
    step: int = 0  # optimizer steps done
    epoch_loss_sum: float = 0.0  # the training losses of the current epoch's batches, summed
    first_loss: float | None = None  # the first logged training loss: the divergence reference
    elapsed: float = 0.0  # seconds of training
    history: tuple[EpochRecord, ...] = ()
    start_checksum: float | None = None  # of the trainable parameters before the first step (None: unknown)


class UnusableCheckpoint(Exception):
    """A checkpoint that cannot be continued from; the message says why ("it is of another configuration")."""


class Checkpoint:
    """The checkpoint file of one run, identified by its key and its settings' fingerprint.

    ``run_dir``: the run directory the file belongs to, if any (``alrao check`` writes one
    into a temporary folder): see :func:`~alrao_cli.util.files.atomic_file`.
    """

    def __init__(self, path: Path, key: str, fingerprint: str, run_dir: Path | None = None) -> None:
        self.path = path
        self.key = key
        self.fingerprint = fingerprint
        self.run_dir = run_dir

    @classmethod
    def of_run(cls, path: Path, spec: RunSpec) -> Checkpoint:
        """The checkpoint of a study's run, at ``path`` = :func:`checkpoint_path` (``RUN_DIR/checkpoints/KEY.pt``)."""
        return cls(path, spec.key, spec.fingerprint(), run_dir=path.parent.parent)

    def save(self, learner: Learner, position: RunPosition, device: torch.device | None = None) -> None:
        """Write the learner, the loop's ``position`` and every generator's state, atomically."""
        state = {
            "format": CHECKPOINT_FORMAT,
            "key": self.key,
            "fingerprint": self.fingerprint,
            "learner": learner.state_dict(),
            "epoch": position.epoch,
            "batch": position.batch,
            "step": position.step,
            "epoch_loss_sum": position.epoch_loss_sum,
            "first_loss": position.first_loss,
            "elapsed": position.elapsed,
            "history": [record.to_dict() for record in position.history],
            "start_checksum": position.start_checksum,
            **generator_states(device),
        }
        if self.run_dir is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic_with(self.path, lambda handle: torch.save(state, handle), run_dir=self.run_dir)

    def restore(
        self, learner: Learner, device: torch.device | None = None, *, generators: bool = True
    ) -> RunPosition | None:
        """Load the checkpoint into ``learner`` and return where the loop stood; None if there is none.

        Raises :class:`UnusableCheckpoint`, leaving ``learner`` untouched, when the file
        cannot be read, belongs to another run or configuration, or lacks a field.
        ``generators=False`` leaves the process's random generators as they are (``alrao
        check`` compares a reload with the original, and must not rewind the caller's).
        """
        if not self.path.exists():
            return None
        state = self._read()
        position = _position(state)
        learner.load_state_dict(state["learner"])
        if generators:
            set_generator_states(state, device)
        return position

    def discard(self) -> None:
        discard_checkpoint(self.path)

    def _read(self) -> dict[str, Any]:
        try:
            # Onto the CPU: load_state_dict copies each tensor to where the learner keeps it
            # (an MPS device cannot hold the switch's float64 weights, which stay on the host).
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as error:  # any unreadable file is one reason to start afresh
            raise UnusableCheckpoint(f"it cannot be read ({type(error).__name__}: {error})") from error
        if not isinstance(state, dict):
            raise UnusableCheckpoint(f"it holds a {type(state).__name__}, not a checkpoint")
        if state.get("key") != self.key or state.get("fingerprint") != self.fingerprint:
            raise UnusableCheckpoint("it is a checkpoint of another configuration")
        if state.get("format", 1) != CHECKPOINT_FORMAT:
            raise UnusableCheckpoint(f"it is of format {state['format']!r}; this alrao reads format {CHECKPOINT_FORMAT}")
        missing = [name for name in ("learner", *_GENERATORS) if name not in state]
        if missing:
            raise UnusableCheckpoint(f"it has no {', '.join(missing)}")
        return state


def _position(state: dict[str, Any]) -> RunPosition:
    try:
        return RunPosition(
            epoch=int(state["epoch"]),
            batch=int(state["batch"]),
            step=int(state["step"]),
            epoch_loss_sum=float(state["epoch_loss_sum"]),
            first_loss=None if state["first_loss"] is None else float(state["first_loss"]),
            elapsed=float(state["elapsed"]),
            history=tuple(EpochRecord.from_dict(record) for record in state["history"]),
            start_checksum=None if state.get("start_checksum") is None else float(state["start_checksum"]),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise UnusableCheckpoint(f"it is damaged ({type(error).__name__}: {error})") from error


# -- the generators: as tensors and plain numbers, what torch.load(weights_only=True) reads ----
def generator_states(device: torch.device | None = None) -> dict[str, Any]:
    """The states of torch's generator (and ``device``'s, on CUDA), Python's ``random`` and NumPy's."""
    version, internal, gauss_next = random.getstate()
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    states: dict[str, Any] = {
        "rng": torch.get_rng_state(),
        "python_rng": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss_next": gauss_next},
        "numpy_rng": {
            "name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian),
        },
    }
    if device is not None and device.type == "cuda":
        states["cuda_rng"] = torch.cuda.get_rng_state(device)
    return states


def set_generator_states(states: dict[str, Any], device: torch.device | None = None) -> None:
    """Put back the generators :func:`generator_states` saved."""
    torch.set_rng_state(states["rng"].cpu())
    python = states["python_rng"]
    random.setstate((python["version"], tuple(int(v) for v in python["internal"].cpu().tolist()), python["gauss_next"]))
    numpy = states["numpy_rng"]
    keys = numpy["keys"].cpu().numpy().astype(np.uint32)
    np.random.set_state((numpy["name"], keys, numpy["position"], numpy["has_gauss"], numpy["cached_gaussian"]))
    if "cuda_rng" in states and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(states["cuda_rng"].cpu(), device)
