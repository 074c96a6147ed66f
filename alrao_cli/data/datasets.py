"""Datasets held as tensors, or read lazily, and the per-batch transforms they apply.

Training steps on CPU take a few milliseconds, so datasets that fit in memory are held
as tensors (:class:`InMemoryDataset`) and a minibatch is one index operation, with no
per-example ``__getitem__`` and no collate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import warnings

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from alrao_cli.data.problems import data_problem
from alrao_cli.data.spec import DataInfo
from alrao_cli.util.reasons import one_line_reason

CROP_PADDING = 4


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
    :func:`batches` (training sets only). ``positions`` are the examples' indices in the
    data their source gave (a factory's dataset, a source's training split), so that a
    problem found after a split or a subset names the item as its owner knows it.
    """

    def __init__(
        self,
        inputs: Tensor,
        targets: Tensor,
        normalization: Normalization | None = None,
        augmentation: Augmentation | None = None,
        positions: Tensor | None = None,
    ) -> None:
        if len(inputs) != len(targets):
            raise ValueError(f"{len(inputs)} inputs but {len(targets)} targets")
        self.inputs = inputs
        self.targets = targets
        self.normalization = normalization
        self.augmentation = augmentation
        self.positions = torch.arange(len(targets)) if positions is None else positions

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
            self.positions.index_select(0, indices),
        )

    def augmented(self, augmentation: Augmentation | None) -> InMemoryDataset:
        """The same examples with another augmentation (or none)."""
        return InMemoryDataset(self.inputs, self.targets, self.normalization, augmentation, self.positions)


@dataclass(frozen=True, slots=True)
class ImageFile:
    """One image of a folder: its file, its class, and how a problem with it is named (``item 17 (cat/a.png)``)."""

    path: str
    label: int
    item: str


class LazyImageDataset(Dataset):
    """Image files read on demand, for ImageFolders too large to hold in memory.

    Items are normalised like :class:`InMemoryDataset` batches; ``augmentation`` is
    applied by :func:`batches` to whole collated batches, exactly as on the fast path.
    ``name`` is the data source's, for the line that names a file that cannot be read.
    """

    def __init__(
        self,
        name: str,
        files: Sequence[ImageFile],
        size: int,
        normalization: Normalization,
        augmentation: Augmentation | None = None,
    ) -> None:
        self.name = name
        self.files = list(files)
        self.size = size
        self.normalization = normalization
        self.augmentation = augmentation

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        pixels = self.pixels(index)
        return self.normalization(pixels.unsqueeze(0))[0], self.files[index].label

    def pixels(self, index: int) -> Tensor:
        """The image at ``index`` as ``uint8 [3, size, size]``; one that cannot be read is named in one line."""
        image = self.files[index]
        try:
            return read_image(image.path, self.size)
        except Exception as error:  # decoding a user's file may raise anything: that file is to blame
            reason = f"cannot be read: {one_line_reason(error)}"
            raise data_problem(self.name, image.item, reason, hint=_unreadable_hint(error)) from error

    def select(self, indices: Tensor) -> LazyImageDataset:
        """A dataset of the files at ``indices``, in that order."""
        chosen = [self.files[i] for i in indices.tolist()]
        return LazyImageDataset(self.name, chosen, self.size, self.normalization, self.augmentation)

    def augmented(self, augmentation: Augmentation | None) -> LazyImageDataset:
        """The same files with another augmentation (or none)."""
        return LazyImageDataset(self.name, self.files, self.size, self.normalization, augmentation)


def read_image(path: str, size: int) -> Tensor:
    """One image file as RGB ``uint8 [3, size, size]``, whatever its size and mode.

    Grayscale, palette and alpha images become RGB (alpha is dropped); 16-bit images keep
    their brightness, where PIL's own conversion would clip everything above 255 to white.
    An image over PIL's pixel limit is refused, not decoded: PIL only warns below twice
    the limit, and a small file that decodes to gigapixels (a decompression bomb) would
    take the machine's memory before any check could see it.
    """
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as image:
            if image.mode.startswith("I;16"):
                image = Image.fromarray((np.asarray(image).astype(np.uint16) >> 8).astype(np.uint8))
            resized = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    return torch.from_numpy(np.array(resized, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def _unreadable_hint(error: Exception) -> str:
    from PIL import Image

    if isinstance(error, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return f"shrink it below PIL's limit of {Image.MAX_IMAGE_PIXELS:,} pixels, or remove it"
    return "remove or replace the file"
