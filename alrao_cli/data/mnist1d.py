"""MNIST-1D (Greydanus 2020), the built-in data: generated once, cached as a NumPy file."""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from alrao_cli.data.datasets import InMemoryDataset, LoadedData
from alrao_cli.data.spec import DataSpec, alrao_cache_dir
from alrao_cli.data.splits import loaded, split_seeded


def load_mnist1d(spec: DataSpec) -> LoadedData:
    inputs, targets = mnist1d_arrays()
    full = InMemoryDataset(torch.from_numpy(inputs), torch.from_numpy(targets))
    train, val = split_seeded(full, spec, None)
    return loaded("mnist1d", 10, train, val)


def mnist1d_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The MNIST-1D training split (``float32 [4000, 40]``, ``int64 [4000]``), generated once and cached.

    The package's default arguments define the dataset; only its training part is
    kept, since the test part must never be used to select architectures.
    """
    from mnist1d.data import get_dataset_args

    arguments = get_dataset_args(as_dict=True)
    arguments.pop("url", None)
    key = hashlib.sha256(json.dumps(arguments, sort_keys=True).encode()).hexdigest()[:16]
    path = alrao_cache_dir() / f"mnist1d-{key}.npz"
    cached = _read_npz(path)
    if cached is not None:
        return cached
    inputs, targets = _generate_mnist1d()
    _write_npz_atomically(path, inputs, targets)
    return inputs, targets


def _generate_mnist1d() -> tuple[np.ndarray, np.ndarray]:
    """Run the generator, which reseeds the global RNGs: restore them so callers are unaffected."""
    from mnist1d.data import get_dataset_args, make_dataset

    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        generated = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
    return np.asarray(generated["x"], dtype=np.float32), np.asarray(generated["y"], dtype=np.int64)


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached arrays, or None when the cache is missing or unreadable (it is then rebuilt)."""
    try:
        with np.load(path) as stored:
            return stored["inputs"], stored["targets"]
    except (OSError, KeyError, ValueError):
        return None


def _write_npz_atomically(path: Path, inputs: np.ndarray, targets: np.ndarray) -> None:
    """Write via a temporary file and ``os.replace``, so concurrent runs never read half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=path.stem, suffix=".tmp", delete=False)
        with handle:
            np.savez(handle, inputs=inputs, targets=targets)
        os.replace(handle.name, path)
    except OSError as error:
        warnings.warn(f"could not cache MNIST-1D in {path.parent}: {error}", stacklevel=2)
