"""``imagefolder:PATH``: one sub-folder of images per class, as torchvision's ImageFolder."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from alrao_cli.data.datasets import (
    CROP_PADDING,
    Augmentation,
    InMemoryDataset,
    LazyImageDataset,
    LoadedData,
    Normalization,
    read_image,
)
from alrao_cli.data.spec import DataSpec
from alrao_cli.data.splits import loaded, split_seeded
from alrao_cli.errors import AlraoUserError

IMAGEFOLDER_SIZE = 32


"""ImageFolder images are resized to this square side, so that they batch together."""


IN_MEMORY_IMAGE_LIMIT = 50_000


"""ImageFolders with more images than this are read lazily instead of held in memory."""


_IMAGENET_NORMALIZATION = Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def load_imagefolder(spec: DataSpec, folder: Path) -> LoadedData:
    samples, classes = _scan_imagefolder(folder)
    normalization = _IMAGENET_NORMALIZATION
    augmentation = Augmentation(CROP_PADDING, True, normalization.black())
    everything = LazyImageDataset(samples, IMAGEFOLDER_SIZE, normalization)
    train, val = split_seeded(everything, spec, augmentation)
    if len(train) + len(val) <= IN_MEMORY_IMAGE_LIMIT:
        train, val = _into_memory(train), _into_memory(val)
    return loaded(f"imagefolder:{folder}", len(classes), train, val)


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


def _into_memory(lazy: LazyImageDataset) -> InMemoryDataset:
    pixels = [read_image(path, lazy.size) for path, _ in lazy.samples]
    labels = torch.tensor([label for _, label in lazy.samples], dtype=torch.int64)
    return InMemoryDataset(torch.stack(pixels), labels, lazy.normalization, lazy.augmentation)
