"""The validation split, carved from a dataset's training split as a pure function of the seed.

The test split of a dataset is never loaded: selecting architectures on it would leak."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset

from alrao_cli.data.checks import check_loaded, expected_from
from alrao_cli.data.datasets import (
    Augmentation,
    InMemoryDataset,
    LazyImageDataset,
    LoadedData,
)
from alrao_cli.data.spec import DataInfo, DataSpec
from alrao_cli.errors import AlraoUserError


def split_indices(size: int, spec: DataSpec) -> tuple[Tensor, Tensor]:
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


def split_seeded(
    full: InMemoryDataset | LazyImageDataset, spec: DataSpec, augmentation: Augmentation | None
) -> tuple[InMemoryDataset | LazyImageDataset, InMemoryDataset | LazyImageDataset]:
    train, val = split_indices(len(full), spec)
    return full.select(train).augmented(augmentation if spec.augment else None), full.select(val).augmented(None)


def loaded(name: str, num_classes: int, train: Dataset, val: Dataset, task: str = "classification") -> LoadedData:
    """Check the datasets and bundle them with their description: every source's data comes through here.

    The first training example gives the input shape, and what every example is checked against.
    """
    expected = expected_from(name, task, num_classes, train[0])
    check_loaded(train, val, expected)
    info = DataInfo(name, num_classes, expected.input_shape, len(train), len(val), task)
    return LoadedData(train, val, info)


def take_shuffled(dataset: Dataset, count: int, seed: int) -> Dataset:
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:count]
    if isinstance(dataset, InMemoryDataset):
        return dataset.select(order)
    return Subset(dataset, order.tolist())
