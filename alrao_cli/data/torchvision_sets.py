"""torchvision's datasets (CIFAR, MNIST, SVHN...) from a local folder, held in memory as uint8."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from alrao_cli.data.datasets import (
    CROP_PADDING,
    Augmentation,
    InMemoryDataset,
    LoadedData,
    Normalization,
)
from alrao_cli.data.spec import DataSpec, default_data_dir
from alrao_cli.data.splits import loaded, split_seeded
from alrao_cli.errors import AlraoUserError


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


def load_torchvision(spec: DataSpec, name: str) -> LoadedData:
    source = _TORCHVISION[name]
    root = Path(spec.data_dir).expanduser() if spec.data_dir else default_data_dir()
    dataset = _open_torchvision(source, name, root, spec.download)
    pixels, labels = _torchvision_tensors(dataset, name)
    normalization = Normalization(source.mean, source.std)
    augmentation = Augmentation(CROP_PADDING, source.mirror_keeps_label, normalization.black())
    full = InMemoryDataset(pixels, labels, normalization)
    train, val = split_seeded(full, spec, augmentation)
    return loaded(name, source.num_classes, train, val)


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
