"""Datasets held as tensors, or read lazily, and the per-batch transforms they apply.

Training steps on CPU take a few milliseconds, so datasets that fit in memory are held
as tensors (:class:`InMemoryDataset`) and a minibatch is one index operation, with no
per-example ``__getitem__`` and no collate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from alrao_cli.data.spec import DataInfo
from alrao_cli.errors import AlraoUserError

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
