"""``imagefolder:PATH``: one sub-folder of images per class, as torchvision's ImageFolder.

Except that every file is listed once. torchvision follows links and lists what it finds
through each: a link back up the tree (``cat/all -> ..``) lists the folder again and
again, and the seeded split then puts copies of one image on both sides, so validation
measures memory (95 % accuracy on pure noise). Here a file is identified by its resolved
path, a folder already walked is not walked again, and a file linked into two classes is
refused: it cannot have both labels.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from alrao_cli.data.datasets import (
    CROP_PADDING,
    Augmentation,
    ImageFile,
    InMemoryDataset,
    LazyImageDataset,
    LoadedData,
    Normalization,
)
from alrao_cli.data.problems import data_problem
from alrao_cli.data.spec import DataSpec
from alrao_cli.data.splits import loaded, split_seeded
from alrao_cli.errors import AlraoUserError

IMAGEFOLDER_SIZE = 32


"""ImageFolder images are resized to this square side, so that they batch together."""


IN_MEMORY_IMAGE_LIMIT = 50_000


"""ImageFolders with more images than this are read lazily instead of held in memory."""


_IMAGENET_NORMALIZATION = Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def load_imagefolder(spec: DataSpec, folder: Path) -> LoadedData:
    name = f"imagefolder:{folder}"
    files, classes = _scan_imagefolder(folder, name)
    normalization = _IMAGENET_NORMALIZATION
    augmentation = Augmentation(CROP_PADDING, True, normalization.black())
    everything = LazyImageDataset(name, files, IMAGEFOLDER_SIZE, normalization)
    train, val = split_seeded(everything, spec, augmentation)
    if len(train) + len(val) <= IN_MEMORY_IMAGE_LIMIT:
        train, val = _into_memory(train), _into_memory(val)
    return loaded(name, len(classes), train, val)


def _scan_imagefolder(folder: Path, name: str) -> tuple[list[ImageFile], list[str]]:
    """Every image once, with its label, and the class names, in torchvision's ImageFolder's order.

    Hidden entries are no part of the data: torchvision's ImageFolder makes a class of
    any subfolder, so a ``.ipynb_checkpoints`` left by Jupyter (or a macOS ``__MACOSX``
    from an unzip) would become a class, and ``._cat.png`` files an image.
    """
    if not folder.is_dir():
        raise AlraoUserError(f"image folder {folder} does not exist", hint="check the path after imagefolder:")
    classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir() and not _is_hidden(entry.name))
    if not classes:
        raise AlraoUserError(
            f"image folder {folder} has no class subfolders",
            hint="put each class's images in its own subfolder: PATH/<class>/<image>.png",
        )
    listed: dict[str, ImageFile] = {}  # by resolved path: a file reached twice is listed once
    for label, class_name in enumerate(classes):
        images = _class_images(folder, folder / class_name)
        if not images:
            raise AlraoUserError(
                f"image folder {folder} has a class subfolder with no images: {class_name}",
                hint="every class subfolder needs at least one .png/.jpg image",
            )
        for path, resolved in images:
            first = listed.setdefault(resolved, ImageFile(path, label, f"item {len(listed)} ({os.path.relpath(path, folder)})"))
            if first.label != label:
                raise data_problem(
                    name, None,
                    f"{os.path.relpath(path, folder)} and {os.path.relpath(first.path, folder)} are one file in two classes",
                    hint="keep each image in one class folder: a link into another class gives it two labels",
                )
    return list(listed.values()), classes


def _class_images(folder: Path, class_folder: Path) -> list[tuple[str, str]]:
    """``(path, resolved path)`` of the visible images under ``class_folder``, links followed, each folder once.

    Sorted as torchvision's ImageFolder sorts them (by folder, then by name), so that the
    seeded split of a folder without links is the one it always was. Neither the image
    folder nor a folder already walked is walked again through a link: that is what
    ends a link loop.
    """
    from torchvision.datasets.folder import IMG_EXTENSIONS

    start = (str(class_folder), os.path.realpath(class_folder))
    walked = {os.path.realpath(folder), start[1]}
    pending = [start]
    found: list[tuple[str, list[tuple[str, str]]]] = []
    while pending:
        directory, resolved_directory = pending.pop()
        images = []
        for entry in _entries(directory):
            if _is_hidden(entry.name):
                continue
            if entry.is_dir():
                resolved = os.path.realpath(entry.path)
                if resolved not in walked:
                    walked.add(resolved)
                    pending.append((entry.path, resolved))
            elif entry.name.lower().endswith(IMG_EXTENSIONS):
                linked = entry.is_symlink()
                resolved = os.path.realpath(entry.path) if linked else os.path.join(resolved_directory, entry.name)
                images.append((entry.path, resolved))
        found.append((directory, images))
    return [image for _, images in sorted(found) for image in images]


def _entries(directory: str) -> list[os.DirEntry]:
    try:
        with os.scandir(directory) as entries:
            return sorted(entries, key=lambda entry: entry.name)
    except OSError as error:
        raise AlraoUserError(f"cannot list the image folder {directory}: {error.strerror}", hint="check its permissions") from error


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def _into_memory(lazy: LazyImageDataset) -> InMemoryDataset:
    """Every image read once, now: one that cannot be read stops the study before any training."""
    pixels = [lazy.pixels(index) for index in range(len(lazy))]
    labels = torch.tensor([image.label for image in lazy.files], dtype=torch.int64)
    return InMemoryDataset(torch.stack(pixels), labels, lazy.normalization, lazy.augmentation)
