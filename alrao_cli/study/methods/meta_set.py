"""Meta data for the methods that learn their rate from a held-apart loss (MLR-SNet, reversible-HD).

Both papers tune the rate on "validation" data. In a screen, the validation split is what
ranks the models, so a method that trained its rate on it would be graded on its own
homework: the meta data here always comes from the *training* split, drawn reproducibly
from the run's seed, so that a resumed run draws the same examples.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset, default_collate

from alrao_cli.data.batches import mixed_seed
from alrao_cli.data.datasets import InMemoryDataset


def examples(dataset: Dataset, indices: Tensor) -> tuple[Tensor, Tensor]:
    """The examples at ``indices`` as one batch ``(x, y)``, without augmentation."""
    if isinstance(dataset, InMemoryDataset):
        return dataset.batch(indices)
    return default_collate([dataset[int(i)] for i in indices])


def meta_batch(dataset: Dataset, batch_size: int, seed: int, draw: int) -> tuple[Tensor, Tensor]:
    """The ``draw``-th meta minibatch: ``batch_size`` distinct training examples, uniformly at
    random, a pure function of ``(seed, draw)``."""
    generator = torch.Generator().manual_seed(mixed_seed("meta-batch", seed, draw))
    size = len(dataset)
    return examples(dataset, torch.randperm(size, generator=generator)[: min(batch_size, size)])


def held_out(size: int, count: int, seed: int) -> tuple[Tensor, Tensor]:
    """Split ``range(size)`` into (the rest, ``count`` held-out indices), at random from ``seed``.

    At least one example stays on each side.
    """
    count = max(1, min(count, size - 1))
    order = torch.randperm(size, generator=torch.Generator().manual_seed(mixed_seed("meta-set", seed)))
    return order[count:].sort().values, order[:count].sort().values
