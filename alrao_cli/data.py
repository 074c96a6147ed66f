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

import difflib
import hashlib
import importlib.util
import inspect
import json
import math
import os
import random
import sys
import tempfile
import traceback
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset
from torch.utils.data import TensorDataset as TorchTensorDataset

from alrao_cli.errors import AlraoUserError

TORCHVISION_SOURCES = ("cifar10", "cifar100", "mnist", "fashion-mnist", "svhn")
BUILTIN_SOURCES = ("mnist1d", *TORCHVISION_SOURCES)
SOURCE_FORMS = (*BUILTIN_SOURCES, "imagefolder:PATH", "python:FILE.py:FACTORY")

IMAGEFOLDER_SIZE = 32
"""ImageFolder images are resized to this square side, so that they batch together."""

IN_MEMORY_IMAGE_LIMIT = 50_000
"""ImageFolders with more images than this are read lazily instead of held in memory."""

CROP_PADDING = 4


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


@dataclass(frozen=True, slots=True)
class LoadedData:
    """The training and validation datasets of a run, with what describes them."""

    train: Dataset
    val: Dataset
    info: DataInfo


@dataclass(frozen=True, slots=True)
class Normalization:
    """Per-channel map from raw ``uint8`` pixels to model inputs (``(p/255 - mean)/std``).

    Images are stored as ``uint8`` (4x less memory than floats) and normalised one
    batch at a time.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __call__(self, pixels: Tensor) -> Tensor:
        """Normalise a ``[B, C, H, W]`` batch of ``uint8`` pixels to floats."""
        shape = (1, len(self.mean), 1, 1)
        mean = torch.tensor(self.mean).view(shape)
        std = torch.tensor(self.std).view(shape)
        return (pixels.float() / 255 - mean) / std

    def black(self) -> tuple[float, ...]:
        """The normalised value of a black pixel, per channel: the colour of padding."""
        return tuple(-m / s for m, s in zip(self.mean, self.std))


@dataclass(frozen=True, slots=True)
class Augmentation:
    """Random crop of a zero-padded image and, optionally, a horizontal flip.

    Applied to whole normalised batches with an explicit generator, so the same
    ``(seed, epoch, batch)`` always gives the same augmentation. ``fill`` is the
    per-channel value of the padded border (black, once normalised).
    """

    padding: int
    flip: bool
    fill: tuple[float, ...]

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """Augment a ``[B, C, H, W]`` batch, each image with its own crop and flip."""
        count, channels, height, width = images.shape
        pad = self.padding
        fill = torch.tensor(self.fill, dtype=images.dtype).view(1, channels, 1, 1)
        padded = fill.expand(count, channels, height + 2 * pad, width + 2 * pad).clone()
        padded[:, :, pad : pad + height, pad : pad + width] = images
        top = torch.randint(0, 2 * pad + 1, (count,), generator=generator)
        left = torch.randint(0, 2 * pad + 1, (count,), generator=generator)
        rows = (top[:, None] + torch.arange(height))[:, None, :, None]
        cols = (left[:, None] + torch.arange(width))[:, None, None, :]
        example = torch.arange(count)[:, None, None, None]
        channel = torch.arange(channels)[None, :, None, None]
        cropped = padded[example, channel, rows, cols]
        if not self.flip:
            return cropped
        mirror = (torch.rand(count, generator=generator) < 0.5).view(count, 1, 1, 1)
        return torch.where(mirror, cropped.flip(-1), cropped)


class InMemoryDataset(Dataset):
    """Examples held as two tensors, so that a minibatch is one index operation.

    ``inputs`` are stored raw (``uint8`` pixels when ``normalization`` is set) and
    turned into model inputs per batch; ``augmentation``, when set, is applied by
    :func:`batches` (training sets only).
    """

    def __init__(
        self,
        inputs: Tensor,
        targets: Tensor,
        normalization: Normalization | None = None,
        augmentation: Augmentation | None = None,
    ) -> None:
        if len(inputs) != len(targets):
            raise ValueError(f"{len(inputs)} inputs but {len(targets)} targets")
        self.inputs = inputs
        self.targets = targets
        self.normalization = normalization
        self.augmentation = augmentation

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        inputs, targets = self.batch(torch.tensor([index]))
        return inputs[0], targets[0]

    def batch(self, indices: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """The examples at ``indices`` as model-ready tensors, augmented if a generator is given."""
        inputs = self.inputs.index_select(0, indices)
        if self.normalization is not None:
            inputs = self.normalization(inputs)
        if self.augmentation is not None and generator is not None:
            inputs = self.augmentation(inputs, generator)
        return inputs, self.targets.index_select(0, indices)

    def select(self, indices: Tensor) -> InMemoryDataset:
        """A dataset of the examples at ``indices``, in that order."""
        return InMemoryDataset(
            self.inputs.index_select(0, indices),
            self.targets.index_select(0, indices),
            self.normalization,
            self.augmentation,
        )

    def augmented(self, augmentation: Augmentation | None) -> InMemoryDataset:
        """The same examples with another augmentation (or none)."""
        return InMemoryDataset(self.inputs, self.targets, self.normalization, augmentation)


class LazyImageDataset(Dataset):
    """Image files read on demand, for ImageFolders too large to hold in memory.

    Items are normalised like :class:`InMemoryDataset` batches; ``augmentation`` is
    applied by :func:`batches` to whole collated batches, exactly as on the fast path.
    """

    def __init__(
        self,
        samples: Sequence[tuple[str, int]],
        size: int,
        normalization: Normalization,
        augmentation: Augmentation | None = None,
    ) -> None:
        self.samples = list(samples)
        self.size = size
        self.normalization = normalization
        self.augmentation = augmentation

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        path, label = self.samples[index]
        pixels = read_image(path, self.size)
        return self.normalization(pixels.unsqueeze(0))[0], label

    def select(self, indices: Tensor) -> LazyImageDataset:
        """A dataset of the samples at ``indices``, in that order."""
        chosen = [self.samples[i] for i in indices.tolist()]
        return LazyImageDataset(chosen, self.size, self.normalization, self.augmentation)

    def augmented(self, augmentation: Augmentation | None) -> LazyImageDataset:
        """The same samples with another augmentation (or none)."""
        return LazyImageDataset(self.samples, self.size, self.normalization, augmentation)


# --------------------------------------------------------------------------- batches


def mixed_seed(*parts: object) -> int:
    """A 63-bit seed from several values, stable across processes and Python versions.

    (``hash()`` is salted per process, so it cannot give a resumable order.)
    """
    text = ":".join(str(part) for part in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1


def num_batches(dataset: Dataset, batch_size: int, drop_last: bool = False) -> int:
    """How many minibatches :func:`batches` yields for one epoch of ``dataset``."""
    _check_batch_size(batch_size)
    size = len(dataset)
    return size // batch_size if drop_last else math.ceil(size / batch_size)


def epoch_order(size: int, *, shuffle: bool, seed: int, epoch: int) -> Tensor:
    """The order of the examples in one epoch: a pure function of ``(seed, epoch)``."""
    if not shuffle:
        return torch.arange(size)
    generator = torch.Generator().manual_seed(mixed_seed("order", seed, epoch))
    return torch.randperm(size, generator=generator)


def batches(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    epoch: int,
    skip: int = 0,
    workers: int = 0,
    drop_last: bool = False,
) -> Iterator[tuple[Tensor, Tensor]]:
    """Minibatches ``(inputs, targets)`` of one epoch, in an order fixed by ``(seed, epoch)``.

    ``skip=k`` starts at batch ``k`` without computing the first ``k``, so a run
    resumed mid-epoch sees the same batches as one never interrupted; augmentation is
    seeded per batch for the same reason. ``workers`` only matters for datasets that
    are not :class:`InMemoryDataset` (those are served by a ``DataLoader``).
    """
    total = num_batches(dataset, batch_size, drop_last)
    if skip < 0:
        raise ValueError(f"skip must be >= 0, got {skip}")
    order = epoch_order(len(dataset), shuffle=shuffle, seed=seed, epoch=epoch)
    if isinstance(dataset, InMemoryDataset):
        return _tensor_batches(dataset, order, batch_size, range(skip, total), seed, epoch)
    return _loader_batches(dataset, order, batch_size, skip, total, workers, seed, epoch)


def _tensor_batches(
    dataset: InMemoryDataset, order: Tensor, batch_size: int, numbers: range, seed: int, epoch: int
) -> Iterator[tuple[Tensor, Tensor]]:
    augmenting = dataset.augmentation is not None
    for number in numbers:
        indices = order[number * batch_size : (number + 1) * batch_size]
        generator = _augmentation_generator(seed, epoch, number) if augmenting else None
        yield dataset.batch(indices, generator)


def _loader_batches(
    dataset: Dataset,
    order: Tensor,
    batch_size: int,
    skip: int,
    total: int,
    workers: int,
    seed: int,
    epoch: int,
) -> Iterator[tuple[Tensor, Tensor]]:
    kept = order[skip * batch_size : total * batch_size].tolist()
    loader = DataLoader(dataset, batch_size=batch_size, sampler=kept, num_workers=workers)
    augmentation: Augmentation | None = getattr(dataset, "augmentation", None)
    for number, (inputs, targets) in enumerate(loader, start=skip):
        if augmentation is not None:
            inputs = augmentation(inputs, _augmentation_generator(seed, epoch, number))
        yield inputs, targets


def _augmentation_generator(seed: int, epoch: int, number: int) -> torch.Generator:
    """Seeded per batch, so a resumed run augments batch k exactly as an uninterrupted one."""
    return torch.Generator().manual_seed(mixed_seed("augment", seed, epoch, number))


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise AlraoUserError(f"batch size must be a positive integer, got {batch_size!r}")


# --------------------------------------------------------------------------- load_data


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


def load_data(spec: DataSpec) -> LoadedData:
    """Load the training split of ``spec.source`` and split it into train and validation."""
    validate_spec(spec)
    kind, *arguments = _parse_source(spec.source)
    if kind == "mnist1d":
        return _load_mnist1d(spec)
    if kind == "imagefolder":
        return _load_imagefolder(spec, Path(arguments[0]).expanduser())
    if kind == "python":
        return _load_python_factory(spec, Path(arguments[0]).expanduser(), arguments[1])
    return _load_torchvision(spec, kind)


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
    close = difflib.get_close_matches(name.lower(), [*BUILTIN_SOURCES, "imagefolder:", "python:"], n=1)
    suggestion = f"did you mean {close[0]!r}? " if close else ""
    raise AlraoUserError(
        f"unknown data source {source!r}", hint=f"{suggestion}valid sources: {', '.join(SOURCE_FORMS)}"
    )


def _split_indices(size: int, spec: DataSpec) -> tuple[Tensor, Tensor]:
    """Seeded train/validation indices of a training split, cut to ``spec.subset``."""
    val_size = max(1, round(size * spec.val_fraction))
    if size - val_size < 1:
        raise AlraoUserError(
            f"{spec.source!r} has {size} training examples: too few to hold out a validation set",
            hint="add examples, or lower val_fraction",
        )
    order = torch.randperm(size, generator=torch.Generator().manual_seed(spec.seed))
    val, train = order[:val_size], order[val_size:]
    if spec.subset is not None:
        train, val = train[: spec.subset], val[: max(1, spec.subset // 4)]
    return train, val


def _split_seeded(
    full: InMemoryDataset | LazyImageDataset, spec: DataSpec, augmentation: Augmentation | None
) -> tuple[InMemoryDataset | LazyImageDataset, InMemoryDataset | LazyImageDataset]:
    train, val = _split_indices(len(full), spec)
    return full.select(train).augmented(augmentation if spec.augment else None), full.select(val).augmented(None)


def _loaded(name: str, num_classes: int, train: Dataset, val: Dataset, task: str = "classification") -> LoadedData:
    """Bundle the datasets with their description; the input shape is read off the first example."""
    first_input = train[0][0]
    shape = tuple(torch.as_tensor(first_input).shape)
    info = DataInfo(name, num_classes, shape, len(train), len(val), task)
    return LoadedData(train, val, info)


# --------------------------------------------------------------------------- mnist1d


def _load_mnist1d(spec: DataSpec) -> LoadedData:
    inputs, targets = mnist1d_arrays()
    full = InMemoryDataset(torch.from_numpy(inputs), torch.from_numpy(targets))
    train, val = _split_seeded(full, spec, None)
    return _loaded("mnist1d", 10, train, val)


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


# --------------------------------------------------------------------------- torchvision


@dataclass(frozen=True, slots=True)
class _TorchvisionSource:
    """How one torchvision dataset is found, read and normalised."""

    class_name: str
    folder: str  # what torchvision expects under data_dir, for error messages
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    mirror_keeps_label: bool


_TORCHVISION = {
    "cifar10": _TorchvisionSource(
        "CIFAR10", "cifar-10-batches-py", 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), True
    ),
    "cifar100": _TorchvisionSource(
        "CIFAR100", "cifar-100-python", 100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), True
    ),
    "mnist": _TorchvisionSource("MNIST", "MNIST/raw", 10, (0.1307,), (0.3081,), False),
    "fashion-mnist": _TorchvisionSource("FashionMNIST", "FashionMNIST/raw", 10, (0.2860,), (0.3530,), True),
    "svhn": _TorchvisionSource(
        "SVHN", "train_32x32.mat", 10, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), False
    ),
}


def _load_torchvision(spec: DataSpec, name: str) -> LoadedData:
    source = _TORCHVISION[name]
    root = Path(spec.data_dir).expanduser() if spec.data_dir else default_data_dir()
    dataset = _open_torchvision(source, name, root, spec.download)
    pixels, labels = _torchvision_tensors(dataset, name)
    normalization = Normalization(source.mean, source.std)
    augmentation = Augmentation(CROP_PADDING, source.mirror_keeps_label, normalization.black())
    full = InMemoryDataset(pixels, labels, normalization)
    train, val = _split_seeded(full, spec, augmentation)
    return _loaded(name, source.num_classes, train, val)


def _open_torchvision(source: _TorchvisionSource, name: str, root: Path, download: bool) -> Any:
    import torchvision.datasets

    expected = root / source.folder
    dataset_class = getattr(torchvision.datasets, source.class_name)
    split = {"split": "train"} if name == "svhn" else {"train": True}
    try:
        return dataset_class(str(root), download=download, **split)
    except ImportError as error:  # SVHN reads .mat files with scipy
        package = (error.name or "scipy").split(".")[0]
        raise AlraoUserError(f"reading {name} needs the {package} package", hint=f"pip install {package}") from error
    except (OSError, RuntimeError) as error:
        if download:
            raise AlraoUserError(
                f"could not download {name} into {root}: {error}",
                hint=f"check the network connection, or put the files in {expected} yourself",
            ) from error
        raise AlraoUserError(
            f"{name} not found (or incomplete) in {expected}",
            hint="pass --download to fetch it, or put the dataset's files there",
        ) from error
    except (ValueError, TypeError, AssertionError) as error:
        raise AlraoUserError(
            f"the {name} files in {expected} are unreadable: {error}",
            hint="delete them and pass --download to fetch them again",
        ) from error


def _torchvision_tensors(dataset: Any, name: str) -> tuple[Tensor, Tensor]:
    """Pixels as ``uint8 [N, C, H, W]`` and labels as ``int64 [N]``, from the dataset's arrays."""
    pixels = torch.as_tensor(np.asarray(dataset.data))
    if pixels.dim() == 3:
        pixels = pixels.unsqueeze(1)
    elif name.startswith("cifar"):
        pixels = pixels.permute(0, 3, 1, 2)
    labels = dataset.labels if name == "svhn" else dataset.targets
    return pixels.contiguous(), torch.as_tensor(np.asarray(labels), dtype=torch.int64)


# --------------------------------------------------------------------------- imagefolder

_IMAGENET_NORMALIZATION = Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def _load_imagefolder(spec: DataSpec, folder: Path) -> LoadedData:
    samples, classes = _scan_imagefolder(folder)
    normalization = _IMAGENET_NORMALIZATION
    augmentation = Augmentation(CROP_PADDING, True, normalization.black())
    everything = LazyImageDataset(samples, IMAGEFOLDER_SIZE, normalization)
    train, val = _split_seeded(everything, spec, augmentation)
    if len(train) + len(val) <= IN_MEMORY_IMAGE_LIMIT:
        train, val = _into_memory(train), _into_memory(val)
    return _loaded(f"imagefolder:{folder}", len(classes), train, val)


def _scan_imagefolder(folder: Path) -> tuple[list[tuple[str, int]], list[str]]:
    """``(path, label)`` of every image and the class names, as torchvision's ImageFolder finds them.

    Except that hidden entries are no part of the data: torchvision's ImageFolder makes a
    class of any subfolder, so a ``.ipynb_checkpoints`` left by Jupyter (or a macOS
    ``__MACOSX`` from an unzip) would become a class, and ``._cat.png`` files an image.
    """
    from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset

    if not folder.is_dir():
        raise AlraoUserError(f"image folder {folder} does not exist", hint="check the path after imagefolder:")
    classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir() and not _is_hidden(entry.name))
    if not classes:
        raise AlraoUserError(
            f"image folder {folder} has no class subfolders",
            hint="put each class's images in its own subfolder: PATH/<class>/<image>.png",
        )

    def is_visible_image(path: str) -> bool:
        parts = Path(path).relative_to(folder).parts
        return path.lower().endswith(IMG_EXTENSIONS) and not any(_is_hidden(part) for part in parts)

    try:
        samples = make_dataset(str(folder), {name: label for label, name in enumerate(classes)}, None, is_visible_image)
    except FileNotFoundError as error:
        raise AlraoUserError(
            f"image folder {folder} has a class subfolder with no images: {error}",
            hint="every class subfolder needs at least one .png/.jpg image",
        ) from error
    return samples, classes


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def read_image(path: str, size: int) -> Tensor:
    """One image file as RGB ``uint8 [3, size, size]``, whatever its size and mode.

    Grayscale, palette and alpha images become RGB (alpha is dropped); 16-bit images keep
    their brightness, where PIL's own conversion would clip everything above 255 to white.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            if image.mode.startswith("I;16"):
                image = Image.fromarray((np.asarray(image).astype(np.uint16) >> 8).astype(np.uint8))
            resized = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    except (OSError, ValueError) as error:
        raise AlraoUserError(f"cannot read image {path}: {error}", hint="remove or replace the file") from error
    return torch.from_numpy(np.array(resized, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def _into_memory(lazy: LazyImageDataset) -> InMemoryDataset:
    pixels = [read_image(path, lazy.size) for path, _ in lazy.samples]
    labels = torch.tensor([label for _, label in lazy.samples], dtype=torch.int64)
    return InMemoryDataset(torch.stack(pixels), labels, lazy.normalization, lazy.augmentation)


# --------------------------------------------------------------------------- python factory


def _load_python_factory(spec: DataSpec, file: Path, factory_name: str) -> LoadedData:
    module = _import_file(file)
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        available = sorted(
            name
            for name, value in vars(module).items()
            if callable(value) and not name.startswith("_") and getattr(value, "__module__", None) == module.__name__
        )
        raise AlraoUserError(
            f"{file} has no function named {factory_name!r}",
            hint=f"callables in that file: {', '.join(available) or 'none'}",
        )
    returned = _call_factory(factory, file, factory_name, spec)
    train, val = _check_factory_result(returned, file, factory_name)
    task, num_classes = _infer_task(train, file)
    train, val = _fast_if_tensors(train), _fast_if_tensors(val)
    if spec.subset is not None:
        train = _take_shuffled(train, spec.subset, spec.seed)
        val = _take_shuffled(val, max(1, spec.subset // 4), spec.seed)
    return _loaded(spec.source, num_classes, train, val, task)


def _import_file(file: Path) -> Any:
    """Import a user's python file by path; problems become one-line errors with file:line."""
    if not file.is_file():
        raise AlraoUserError(f"python data file {file} not found", hint="check the path after python:")
    if file.suffix != ".py":
        raise AlraoUserError(f"python data file {file} must be a .py file")
    resolved = file.resolve()
    module_name = f"alrao_user_data_{hashlib.sha256(str(resolved).encode()).hexdigest()[:12]}"
    module_spec = importlib.util.spec_from_file_location(module_name, resolved)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module  # classes and dataclasses defined there need it
    try:
        module_spec.loader.exec_module(module)
    except SyntaxError as error:
        del sys.modules[module_name]
        raise AlraoUserError(
            f"syntax error in {error.filename or file}:{error.lineno}: {error.msg}",
            hint="fix the python file",
        ) from error
    except Exception as error:  # whatever a user's module raises while importing
        del sys.modules[module_name]
        raise AlraoUserError(
            f"importing {_where(error, resolved)} failed: {type(error).__name__}: {error}",
            hint="fix the python file",
        ) from error
    return module


def _call_factory(factory: Any, file: Path, factory_name: str, spec: DataSpec) -> Any:
    offered = {"seed": spec.seed, "data_dir": spec.data_dir}
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        parameters = {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    arguments = {key: value for key, value in offered.items() if takes_any or key in parameters}
    try:
        return factory(**arguments)
    except AlraoUserError:
        raise
    except Exception as error:  # whatever the user's factory raises
        raise AlraoUserError(
            f"{factory_name}() from {_where(error, file.resolve())} raised {type(error).__name__}: {error}",
            hint="fix the factory",
        ) from error


def _where(error: BaseException, file: Path) -> str:
    """``file:line`` of the deepest frame of ``error`` inside ``file`` (or just ``file``)."""
    lines = [frame.lineno for frame in traceback.extract_tb(error.__traceback__) if Path(frame.filename) == file]
    return f"{file}:{lines[-1]}" if lines else str(file)


_DATASET_HINT = "return two map-style datasets, e.g. TensorDataset(x_train, y_train), TensorDataset(x_val, y_val)"


def _check_factory_result(returned: Any, file: Path, factory_name: str) -> tuple[Dataset, Dataset]:
    """Two non-empty map-style datasets of ``(x, y)`` pairs, or one line saying what came instead."""
    expected = f"{factory_name}() in {file} must return (train_dataset, val_dataset)"
    if not isinstance(returned, (tuple, list)) or len(returned) != 2:
        raise AlraoUserError(f"{expected}, got {type(returned).__name__}", hint=_DATASET_HINT)
    if all(isinstance(part, (Tensor, np.ndarray)) for part in returned):
        raise AlraoUserError(
            f"{expected}, got two arrays (inputs and targets?)",
            hint="wrap them: return TensorDataset(x_train, y_train), TensorDataset(x_val, y_val)",
        )
    for role, dataset in zip(("train", "val"), returned):
        kind = type(dataset).__name__
        map_style = hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")
        if isinstance(dataset, (str, bytes)) or not map_style:
            raise AlraoUserError(
                f"{expected}; its {role} dataset is a {kind}, not a map-style dataset", hint=_DATASET_HINT
            )
        try:
            size = len(dataset)
        except TypeError as error:
            raise AlraoUserError(
                f"{expected}; its {role} dataset ({kind}) has no length: {error}", hint=_DATASET_HINT
            ) from error
        if size == 0:
            raise AlraoUserError(f"{expected}; its {role} dataset is empty")
    train, val = returned
    for role, dataset in (("train", train), ("val", val)):
        try:
            example = dataset[0]
        except Exception as error:  # whatever the user's __getitem__ raises
            raise AlraoUserError(
                f"{expected}; reading item 0 of its {role} dataset raised {type(error).__name__}: {error}",
                hint=_DATASET_HINT,
            ) from error
        if not isinstance(example, (tuple, list)) or len(example) != 2:
            kind = type(example).__name__
            raise AlraoUserError(f"{expected}; items of its {role} dataset must be (x, y) pairs, got {kind}")
        for part in example:
            try:
                torch.as_tensor(part)
            except (TypeError, ValueError, RuntimeError) as error:
                raise AlraoUserError(
                    f"{expected}; its {role} items must hold tensors, arrays or numbers, got {type(part).__name__}"
                ) from error
    return train, val


def _infer_task(train: Dataset, file: Path) -> tuple[str, int]:
    """Classification for integer targets (num_classes: ``classes`` or max label + 1), regression for floats."""
    target = torch.as_tensor(train[0][1])
    if target.is_floating_point():
        return "regression", max(1, target.numel())
    if target.dtype == torch.bool or target.is_complex() or target.numel() != 1:
        raise AlraoUserError(
            f"targets from {file} must be integer class labels or float regression targets, "
            f"got {target.dtype} of shape {tuple(target.shape)}"
        )
    classes = getattr(train, "classes", None)
    if classes is not None:
        return "classification", len(classes)
    if isinstance(train, TorchTensorDataset) and len(train.tensors) == 2:
        labels = train.tensors[1]
    else:
        labels = torch.as_tensor([int(torch.as_tensor(train[i][1])) for i in range(len(train))])
    if int(labels.min()) < 0:
        raise AlraoUserError(f"class labels from {file} must be >= 0, found {int(labels.min())}")
    return "classification", int(labels.max()) + 1


def _fast_if_tensors(dataset: Dataset) -> Dataset:
    """A torch ``TensorDataset`` of ``(x, y)`` becomes an :class:`InMemoryDataset` (fast batches)."""
    if isinstance(dataset, TorchTensorDataset) and len(dataset.tensors) == 2:
        return InMemoryDataset(*dataset.tensors)
    return dataset


def _take_shuffled(dataset: Dataset, count: int, seed: int) -> Dataset:
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:count]
    if isinstance(dataset, InMemoryDataset):
        return dataset.select(order)
    return Subset(dataset, order.tolist())
