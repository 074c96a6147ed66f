"""MNIST-1D (Greydanus 2020), the built-in data: generated once, cached as a NumPy file.

Reading the cache takes NumPy alone: the ``mnist1d`` package (whose import costs about
as much as torch's) is imported only to generate the data, the first time.
"""

from __future__ import annotations

import hashlib
import json
import random
import types
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

from alrao_cli.data.datasets import InMemoryDataset, LoadedData
from alrao_cli.data.spec import DataSpec, alrao_cache_dir
from alrao_cli.data.splits import loaded, split_seeded
from alrao_cli.util.files import write_atomic_with

# The dataset: the mnist1d package's default arguments (``get_dataset_args()``, less the
# download URL), written out here so that the cache file's name is known without
# importing the package. The name is a digest of these: the same file as before they
# were written out. tests/test_data.py checks that they still match the package's.
MNIST1D_ARGUMENTS: dict[str, object] = {
    "num_samples": 5000,
    "train_split": 0.8,
    "template_len": 12,
    "padding": [36, 60],
    "scale_coeff": 0.4,
    "max_translation": 48,
    "corr_noise_scale": 0.25,
    "iid_noise_scale": 2e-2,
    "shear_scale": 0.75,
    "shuffle_seq": False,
    "final_seq_length": 40,
    "seed": 42,
}
_LENGTH = MNIST1D_ARGUMENTS["final_seq_length"]


def load_mnist1d(spec: DataSpec) -> LoadedData:
    inputs, targets = mnist1d_arrays()
    full = InMemoryDataset(torch.from_numpy(inputs), torch.from_numpy(targets))
    train, val = split_seeded(full, spec, None)
    return loaded("mnist1d", 10, train, val)


def cache_path() -> Path:
    """The cached arrays' file: named by a digest of :data:`MNIST1D_ARGUMENTS`."""
    key = hashlib.sha256(json.dumps(MNIST1D_ARGUMENTS, sort_keys=True).encode()).hexdigest()[:16]
    return alrao_cache_dir() / f"mnist1d-{key}.npz"


def mnist1d_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The MNIST-1D training split (``float32 [4000, 40]``, ``int64 [4000]``), generated once and cached.

    Only the training part is kept, since the test part must never be used to select
    architectures. A cache file that cannot be read (empty, cut short by a full disk,
    not a NumPy archive) is generated again and replaced.
    """
    path = cache_path()
    cached = _read_npz(path)
    if cached is not None:
        return cached
    inputs, targets = _generate_mnist1d()
    _write_npz_atomically(path, inputs, targets)
    return inputs, targets


def _generate_mnist1d() -> tuple[np.ndarray, np.ndarray]:
    """Run the generator, which reseeds the global RNGs: restore them so callers are unaffected."""
    import mnist1d.data  # only here: its import is slow, and reading the cache does not need it

    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        generated = mnist1d.data.make_dataset(types.SimpleNamespace(**MNIST1D_ARGUMENTS))
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
    return np.asarray(generated["x"], dtype=np.float32), np.asarray(generated["y"], dtype=np.int64)


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached arrays, or None when the cache is missing, unreadable or not what it should be."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            inputs, targets = stored["inputs"], stored["targets"]
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    well_formed = (
        inputs.dtype == np.float32 and targets.dtype == np.int64
        and inputs.ndim == 2 and inputs.shape[1] == _LENGTH and targets.shape == (inputs.shape[0],)
        and inputs.shape[0] > 0
    )
    return (inputs, targets) if well_formed else None


def _write_npz_atomically(path: Path, inputs: np.ndarray, targets: np.ndarray) -> None:
    """Write through a temporary file, so that concurrent runs never read half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic_with(path, lambda handle: np.savez(handle, inputs=inputs, targets=targets))
    except OSError as error:
        warnings.warn(f"could not cache MNIST-1D in {path.parent}: {error}", stacklevel=2)
