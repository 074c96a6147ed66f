"""Deterministic minibatches: an epoch's order is a pure function of ``(seed, epoch)``.

Every architecture of a screen sees the same examples in the same order, and a resumed
run sees exactly the batches it would have seen uninterrupted (``skip``)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from alrao_cli.data.datasets import Augmentation, InMemoryDataset
from alrao_cli.errors import AlraoUserError


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
