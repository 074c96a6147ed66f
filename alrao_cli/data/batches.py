"""Deterministic minibatches: an epoch's order is a pure function of ``(seed, epoch)``.

Every architecture of a screen sees the same examples in the same order, and a resumed
run sees exactly the batches it would have seen uninterrupted (``skip``).

A last batch of a single example joins the batch before it: in train mode BatchNorm
cannot normalise one example ("Expected more than 1 value per channel"), so a dataset of
33 examples in batches of 32 would fail a BatchNorm model at the end of every epoch.
Merging keeps every example in every epoch; :func:`num_batches` counts the same batches,
so that schedules (1cycle) and resumed runs see the exact number."""

from __future__ import annotations

import hashlib
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
    return _count(len(dataset), batch_size, drop_last)


def _count(size: int, batch_size: int, drop_last: bool) -> int:
    if drop_last:
        return size // batch_size
    whole, left = divmod(size, batch_size)
    if left == 1 and whole > 0:
        return whole  # the last example joins the batch before it
    return whole + (left > 0)


def _bounds(number: int, total: int, batch_size: int, size: int, drop_last: bool) -> tuple[int, int]:
    """Where batch ``number`` starts and ends in the epoch's order: the last one takes what is left."""
    start = number * batch_size
    last = number == total - 1 and not drop_last
    return start, size if last else start + batch_size


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
    chunks = [order[slice(*_bounds(n, total, batch_size, len(order), drop_last))] for n in range(skip, total)]
    if isinstance(dataset, InMemoryDataset):
        return _tensor_batches(dataset, chunks, skip, seed, epoch)
    return _loader_batches(dataset, chunks, skip, workers, seed, epoch)


def _tensor_batches(
    dataset: InMemoryDataset, chunks: list[Tensor], skip: int, seed: int, epoch: int
) -> Iterator[tuple[Tensor, Tensor]]:
    augmenting = dataset.augmentation is not None
    for number, indices in enumerate(chunks, start=skip):
        generator = _augmentation_generator(seed, epoch, number) if augmenting else None
        yield dataset.batch(indices, generator)


def _loader_batches(
    dataset: Dataset, chunks: list[Tensor], skip: int, workers: int, seed: int, epoch: int
) -> Iterator[tuple[Tensor, Tensor]]:
    loader = DataLoader(dataset, batch_sampler=[chunk.tolist() for chunk in chunks], num_workers=workers)
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
