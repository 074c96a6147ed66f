"""A meta-trained MLR-SNet on disk: what meta-test loads to drive a new task.

The paper's point (Sec. 3.2, "Meta-Test") is that θ* is trained once and reused
("plug-and-play"), so the net must outlive the run that trained it. The file is a plain
dict of built-in types and tensors, readable with ``torch.load(weights_only=True)``:
nothing in it is executed on load. It holds the net's config and its weights, not its
hidden state: meta-test starts a new task from a zero state.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from alrao_cli.learned.schedule_net import ScheduleNet
from alrao_cli.util.files import write_atomic_with

FORMAT = "alrao-mlr-snet"
VERSION = 1
_STATE_BUFFERS = ("h", "c")


def save_schedule_net(net: ScheduleNet, path: str | Path, run_dir: Path | None = None) -> None:
    """Write ``net``'s config and weights (not its hidden state) to ``path``.

    Inside a run directory (``run_dir``), the folders are created and links refused as for
    every file alrao writes there (:func:`~alrao_cli.util.files.atomic_file`).
    """
    weights = {
        name: tensor.detach().cpu().clone()
        for name, tensor in net.state_dict().items()
        if name not in _STATE_BUFFERS
    }
    saved = {"format": FORMAT, "version": VERSION, "config": net.config(), "weights": weights}
    write_atomic_with(Path(path), lambda file: torch.save(saved, file), run_dir=run_dir)  # never half a net


def load_schedule_net(path: str | Path) -> ScheduleNet:
    """Rebuild the net saved at ``path``, with a zero hidden state.

    Raises ValueError, one line naming the file, if it is missing, not such a file, or
    holds weights whose names or shapes do not fit the config it declares.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"MLR-SNet file {path} does not exist")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch.load raises almost anything on a file it cannot parse
        raise ValueError(
            f"MLR-SNet file {path} cannot be read as a saved net: {_why_unreadable(error)}"
        ) from None
    config, weights = _unpack(saved, path)
    try:
        net = ScheduleNet(**config)
    except (TypeError, ValueError) as error:
        raise ValueError(f"MLR-SNet file {path} has an invalid config: {error}") from None
    _check_weights(net, weights, path)
    net.to(weights["w3.weight"].dtype)  # a net meta-trained in float64 comes back in float64
    net.load_state_dict({**weights, "h": net.h, "c": net.c})
    return net


def _why_unreadable(error: Exception) -> str:
    """A short reason for a failed ``torch.load`` (torch's own messages run to paragraphs)."""
    if isinstance(error, pickle.UnpicklingError):
        return "it is not a file of tensors and plain data (torch.load(weights_only=True) refused it)"
    if isinstance(error, EOFError):
        return "it is empty or cut short"
    if isinstance(error, OSError):
        return error.strerror or type(error).__name__
    return "it is not a torch file, or is corrupt"


def _unpack(saved: Any, path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The config and weights of a file written by :func:`save_schedule_net`."""
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise ValueError(f"MLR-SNet file {path} is not a saved MLR-SNet (no '{FORMAT}' format mark)")
    if saved.get("version") != VERSION:
        raise ValueError(
            f"MLR-SNet file {path} has version {saved.get('version')!r}, this code reads {VERSION}"
        )
    config, weights = saved.get("config"), saved.get("weights")
    if not isinstance(config, dict) or set(config) != {"hidden_size", "gamma"}:
        raise ValueError(f"MLR-SNet file {path} has no valid config (expected hidden_size and gamma)")
    if not isinstance(weights, dict) or not all(isinstance(w, torch.Tensor) for w in weights.values()):
        raise ValueError(f"MLR-SNet file {path} has no weights dict of tensors")
    return config, weights


def _check_weights(net: ScheduleNet, weights: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse missing, unexpected or wrongly shaped weights, naming the first culprit."""
    expected = {name: p.shape for name, p in net.named_parameters()}
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"unexpected {', '.join(unexpected)}"] if unexpected else []
        )
        raise ValueError(f"MLR-SNet file {path} does not fit its config: {'; '.join(parts)}")
    for name, shape in expected.items():
        if not weights[name].is_floating_point():
            raise ValueError(f"MLR-SNet file {path} does not fit its config: {name} is {weights[name].dtype}")
        if weights[name].shape != shape:
            raise ValueError(
                f"MLR-SNet file {path} does not fit its config: {name} has shape "
                f"{tuple(weights[name].shape)}, expected {tuple(shape)} for hidden_size {net.hidden_size}"
            )
