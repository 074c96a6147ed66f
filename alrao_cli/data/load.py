"""Datasets for a screen: load one, split off validation, and serve minibatches.

Every architecture of a screen must see the same examples in the same order, and a
resumed run must see exactly the batches it would have seen uninterrupted; so the
train/validation split is a pure function of ``DataSpec.seed`` and the order of an
epoch a pure function of ``(seed, epoch)``. The test split of a dataset is never
loaded: selecting architectures on it would leak.

Training steps on CPU take a few milliseconds, so datasets that fit in memory are held
as tensors (:class:`InMemoryDataset`) and a minibatch is one index operation, with no
per-example ``__getitem__`` and no collate; anything else goes through a ``DataLoader``
that follows the same order.
"""

from __future__ import annotations

import functools
from pathlib import Path

from alrao_cli.data.datasets import LoadedData
from alrao_cli.data.factory import load_python_factory
from alrao_cli.data.imagefolder import load_imagefolder
from alrao_cli.data.mnist1d import load_mnist1d
from alrao_cli.data.spec import BUILTIN_SOURCES, SOURCE_FORMS, DataSpec
from alrao_cli.data.torchvision_sets import load_torchvision
from alrao_cli.errors import AlraoUserError
from alrao_cli.util.suggest import did_you_mean


def validate_spec(spec: DataSpec) -> None:
    """Reject a spec that cannot work, before anything is loaded (cheap: reads no data)."""
    kind = _parse_source(spec.source)[0]
    fraction = spec.val_fraction
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise AlraoUserError(
            f"val_fraction must be a number strictly between 0 and 1, got {fraction!r}",
            hint="e.g. 0.1 holds out a tenth of the training split for validation",
        )
    subset = spec.subset
    if subset is not None and (isinstance(subset, bool) or not isinstance(subset, int) or subset < 1):
        raise AlraoUserError(f"subset must be a positive number of examples, got {spec.subset!r}")
    if spec.augment and kind in ("mnist1d", "python"):
        raise AlraoUserError(
            f"augmentation is only available for image datasets, not {spec.source!r}",
            hint="drop --augment (a python factory can augment its own dataset)",
        )


@functools.lru_cache(maxsize=2)
def cached_data(spec: DataSpec) -> LoadedData:
    """:func:`load_data`, once per process: every run of a study on the same data shares it."""
    return load_data(spec)


def load_data(spec: DataSpec) -> LoadedData:
    """Load the training split of ``spec.source`` and split it into train and validation."""
    validate_spec(spec)
    kind, *arguments = _parse_source(spec.source)
    if kind == "mnist1d":
        return load_mnist1d(spec)
    if kind == "imagefolder":
        return load_imagefolder(spec, Path(arguments[0]).expanduser())
    if kind == "python":
        return load_python_factory(spec, Path(arguments[0]).expanduser(), arguments[1])
    return load_torchvision(spec, kind)


def source_kind(source: str) -> str:
    """What loading ``source`` runs: ``mnist1d``, ``imagefolder``, ``python`` (a user's
    factory) or a torchvision dataset's name; an unknown source is one line."""
    return _parse_source(source)[0]


def _parse_source(source: str) -> tuple[str, ...]:
    """``("mnist1d",)``, ``("imagefolder", path)`` or ``("python", file, factory)``."""
    if not isinstance(source, str) or not source.strip():
        raise AlraoUserError("the data source is empty", hint=f"use one of: {', '.join(SOURCE_FORMS)}")
    name = source.strip()
    if name.lower() in BUILTIN_SOURCES:
        return (name.lower(),)
    prefix, _, rest = name.partition(":")
    if prefix == "imagefolder":
        if not rest:
            raise AlraoUserError("imagefolder needs a folder: imagefolder:PATH", hint="e.g. imagefolder:./my_images")
        return ("imagefolder", rest)
    if prefix == "python":
        file, _, factory = rest.rpartition(":")
        if not file or not factory.isidentifier():
            raise AlraoUserError(
                f"python data source {source!r} must read python:FILE.py:FACTORY",
                hint="e.g. python:my_data.py:make_datasets",
            )
        return ("python", file, factory)
    suggestion = did_you_mean(name, [*BUILTIN_SOURCES, "imagefolder:", "python:"])
    raise AlraoUserError(
        f"unknown data source {source!r}", hint=f"{suggestion}valid sources: {', '.join(SOURCE_FORMS)}"
    )
