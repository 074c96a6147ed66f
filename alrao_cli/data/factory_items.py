"""A ``python:`` factory's items as a model takes them: converted to its types, and checked.

A factory may return NumPy arrays of ``float64`` and labels of any integer type; a model's
weights are ``float32`` and its loss wants ``int64`` labels, so such data would fail in
the model's first layer, and the model would be blamed. Tensors held whole (a
``TensorDataset``) are converted once, at load; any other dataset item by item, as it is
read, since it may compute its items (augment them) and cannot be held. Items not held
are also checked as they are read, by the rules :mod:`alrao_cli.data.checks` applies to
held tensors, and a sample of them when the data is loaded.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset
from torch.utils.data import TensorDataset as TorchTensorDataset

from alrao_cli.data.checks import Expected, check_examples
from alrao_cli.data.datasets import InMemoryDataset
from alrao_cli.data.problems import data_problem
from alrao_cli.util.reasons import one_line_reason

# A dataset not held as tensors is read for at most this many items when the data is
# loaded (its labels give the number of classes); the others are checked as training reads them.
LABEL_SAMPLE = 256


def model_types(inputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """Examples (first dimension) in a model's types: float inputs and targets as ``float32``, labels as ``int64 [N]``.

    Integer inputs are kept as they are (token ids for an embedding, say). Tensors
    already of these types are returned as they are, not copied.
    """
    if inputs.is_floating_point():
        inputs = inputs.float()
    if targets.is_floating_point():
        targets = targets.float()
    elif not (targets.is_complex() or targets.dtype == torch.bool):
        targets = targets.long()
        if targets.dim() == 2 and targets.shape[1] == 1:
            targets = targets.reshape(len(targets))  # labels shaped [N, 1]: one per example all the same
    return inputs, targets


def held(dataset: Dataset) -> Dataset:
    """A torch ``TensorDataset`` of ``(x, y)`` becomes an :class:`InMemoryDataset` in a model's types (fast batches)."""
    if isinstance(dataset, TorchTensorDataset) and len(dataset.tensors) == 2:
        return InMemoryDataset(*model_types(*dataset.tensors))
    return dataset


def read_item(dataset: Dataset, index: int, name: str, role: str) -> tuple[Tensor, Tensor]:
    """Item ``index`` as ``(x, y)`` tensors in a model's types; one that cannot be read is named in one line."""
    item = f"{role} item {index}"
    try:
        pair = dataset[index]
    except Exception as error:  # the user's __getitem__ may raise anything: that item is to blame
        raise data_problem(
            name, item, f"cannot be read: {one_line_reason(error)}", hint="fix the dataset's __getitem__"
        ) from error
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise data_problem(name, item, f"is a {type(pair).__name__}, not an (x, y) pair", hint="return (x, y) from __getitem__")
    try:
        x, y = (torch.as_tensor(part) for part in pair)
    except (TypeError, ValueError, RuntimeError) as error:
        raise data_problem(
            name, item, f"holds something other than tensors, arrays or numbers: {one_line_reason(error)}",
            hint="return tensors, NumPy arrays or numbers from __getitem__",
        ) from error
    x, y = model_types(x.unsqueeze(0), y.unsqueeze(0))
    return x[0], y[0]


def check_item(index: int, x: Tensor, y: Tensor, expected: Expected, role: str) -> None:
    """One item read by :func:`read_item`, by the rules held tensors are checked by."""
    check_examples(x.unsqueeze(0), y.unsqueeze(0), torch.tensor([index]), expected, role)


def sample_positions(size: int) -> list[int]:
    """Every index of a small dataset; :data:`LABEL_SAMPLE` of a large one, spread from the first to the last.

    (A dataset sorted by class shows its last class too.)
    """
    if size <= LABEL_SAMPLE:
        return list(range(size))
    return [round(i * (size - 1) / (LABEL_SAMPLE - 1)) for i in range(LABEL_SAMPLE)]


class CheckedItems(Dataset):
    """A factory's dataset not held as tensors: each item converted and checked as it is read.

    Attributes not its own are the wrapped dataset's (its ``classes``, ``augmentation``...).
    """

    def __init__(self, dataset: Dataset, expected: Expected, role: str) -> None:
        self.dataset = dataset
        self.expected = expected
        self.role = role

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        x, y = read_item(self.dataset, index, self.expected.name, self.role)
        check_item(index, x, y, self.expected, self.role)
        return x, y

    def __getattr__(self, name: str):
        if name.startswith("__") or name in ("dataset", "expected", "role"):
            raise AttributeError(name)  # not the wrapped dataset's (and unpickling asks before __dict__ is set)
        return getattr(self.dataset, name)
