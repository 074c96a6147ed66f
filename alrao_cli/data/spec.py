"""Which data a run trains on, as plain data: no torch, so that a run's spec travels and
reports without it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TORCHVISION_SOURCES = ("cifar10", "cifar100", "mnist", "fashion-mnist", "svhn")


BUILTIN_SOURCES = ("mnist1d", *TORCHVISION_SOURCES)


SOURCE_FORMS = (*BUILTIN_SOURCES, "imagefolder:PATH", "python:FILE.py:FACTORY")


@dataclass(frozen=True, slots=True)
class DataSpec:
    """Which data a run trains on; plain and picklable, as it travels to worker processes.

    ``source`` is one of :data:`SOURCE_FORMS`. ``subset`` keeps at most N training
    examples (and ``max(1, N // 4)`` validation examples) for quick runs.
    ``val_fraction`` is the share of the dataset's *training* split held out for
    validation. ``augment`` adds a random crop (padding 4) and, where mirror images keep
    their label, a horizontal flip, for the built-in image datasets and ImageFolders.
    """

    source: str = "mnist1d"
    data_dir: str | None = None
    download: bool = False
    subset: int | None = None
    val_fraction: float = 0.1
    augment: bool = False
    seed: int = 0


@dataclass(frozen=True, slots=True)
class DataInfo:
    """What a model builder needs to know about the data: sizes, shapes, task."""

    name: str
    num_classes: int
    input_shape: tuple[int, ...]
    train_size: int
    val_size: int
    task: str = "classification"


def alrao_cache_dir() -> Path:
    """Where alrao caches things: ``$ALRAO_CACHE_DIR``, else ``$XDG_CACHE_HOME/alrao``, else ``~/.cache/alrao``."""
    override = os.environ.get("ALRAO_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "alrao"


def default_data_dir() -> Path:
    """Where torchvision datasets live when ``DataSpec.data_dir`` is not given."""
    return alrao_cache_dir() / "data"
