"""``python:FILE.py:FACTORY``: the user's own function returning training and validation datasets."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset
from torch.utils.data import TensorDataset as TorchTensorDataset

from alrao_cli.data.datasets import InMemoryDataset, LoadedData
from alrao_cli.data.spec import DataSpec
from alrao_cli.data.splits import loaded, take_shuffled
from alrao_cli.errors import AlraoUserError
from alrao_cli.util.pyfile import import_user_file, line_in


def load_python_factory(spec: DataSpec, file: Path, factory_name: str) -> LoadedData:
    _, module = import_user_file(file, what="python data file")
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        available = sorted(
            name
            for name, value in vars(module).items()
            if callable(value) and not name.startswith("_") and getattr(value, "__module__", None) == module.__name__
        )
        raise AlraoUserError(
            f"{file} has no function named {factory_name!r}",
            hint=f"callables in that file: {', '.join(available) or 'none'}",
        )
    returned = _call_factory(factory, file, factory_name, spec)
    train, val = _check_factory_result(returned, file, factory_name)
    task, num_classes, labels_checked = _infer_task(train, file)
    train, val = _fast_if_tensors(train), _fast_if_tensors(val)
    if task == "classification":
        train = train if labels_checked else _labels_checked(train, num_classes, file, "training")
        val = _labels_checked(val, num_classes, file, "validation")
    if spec.subset is not None:
        train = take_shuffled(train, spec.subset, spec.seed)
        val = take_shuffled(val, max(1, spec.subset // 4), spec.seed)
    return loaded(spec.source, num_classes, train, val, task)


def _call_factory(factory: Any, file: Path, factory_name: str, spec: DataSpec) -> Any:
    offered = {"seed": spec.seed, "data_dir": spec.data_dir}
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        parameters = {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    arguments = {key: value for key, value in offered.items() if takes_any or key in parameters}
    try:
        return factory(**arguments)
    except AlraoUserError:
        raise
    except Exception as error:  # whatever the user's factory raises
        raise AlraoUserError(
            f"{factory_name}() from {file}{line_in(file.resolve(), error)} raised {type(error).__name__}: {error}",
            hint="fix the factory",
        ) from error


_DATASET_HINT = "return two map-style datasets, e.g. TensorDataset(x_train, y_train), TensorDataset(x_val, y_val)"


def _check_factory_result(returned: Any, file: Path, factory_name: str) -> tuple[Dataset, Dataset]:
    """Two non-empty map-style datasets of ``(x, y)`` pairs, or one line saying what came instead."""
    expected = f"{factory_name}() in {file} must return (train_dataset, val_dataset)"
    if not isinstance(returned, (tuple, list)) or len(returned) != 2:
        raise AlraoUserError(f"{expected}, got {type(returned).__name__}", hint=_DATASET_HINT)
    if all(isinstance(part, (Tensor, np.ndarray)) for part in returned):
        raise AlraoUserError(
            f"{expected}, got two arrays (inputs and targets?)",
            hint="wrap them: return TensorDataset(x_train, y_train), TensorDataset(x_val, y_val)",
        )
    for role, dataset in zip(("train", "val"), returned):
        kind = type(dataset).__name__
        map_style = hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")
        if isinstance(dataset, (str, bytes)) or not map_style:
            raise AlraoUserError(
                f"{expected}; its {role} dataset is a {kind}, not a map-style dataset", hint=_DATASET_HINT
            )
        try:
            size = len(dataset)
        except TypeError as error:
            raise AlraoUserError(
                f"{expected}; its {role} dataset ({kind}) has no length: {error}", hint=_DATASET_HINT
            ) from error
        if size == 0:
            raise AlraoUserError(f"{expected}; its {role} dataset is empty")
    train, val = returned
    for role, dataset in (("train", train), ("val", val)):
        try:
            example = dataset[0]
        except Exception as error:  # whatever the user's __getitem__ raises
            raise AlraoUserError(
                f"{expected}; reading item 0 of its {role} dataset raised {type(error).__name__}: {error}",
                hint=_DATASET_HINT,
            ) from error
        if not isinstance(example, (tuple, list)) or len(example) != 2:
            kind = type(example).__name__
            raise AlraoUserError(f"{expected}; items of its {role} dataset must be (x, y) pairs, got {kind}")
        for part in example:
            try:
                torch.as_tensor(part)
            except (TypeError, ValueError, RuntimeError) as error:
                raise AlraoUserError(
                    f"{expected}; its {role} items must hold tensors, arrays or numbers, got {type(part).__name__}"
                ) from error
    return train, val


# A dataset whose labels are not held as one tensor is read for at most this many labels
# when the data is loaded; the others are checked as training reads them.
LABEL_SAMPLE = 256
_CLASSES_HINT = "give the training dataset a `classes` attribute listing every class"


def _infer_task(train: Dataset, file: Path) -> tuple[str, int, bool]:
    """The task, its number of classes (outputs, for regression), and whether every label was checked.

    The first example decides the task: integer targets are class labels, float targets
    regression targets (as many outputs as the target has values). For classification,
    without reading a large dataset through:

    - labels held as one tensor (a ``TensorDataset`` of inputs and labels) are all read;
    - otherwise at most :data:`LABEL_SAMPLE` examples are, spread evenly from the first to
      the last (a dataset sorted by class shows its last class too);
    - the number of classes is the length of the dataset's ``classes`` attribute where it
      has one, else the largest label read plus one.

    Labels not read here are checked when training reads them (:class:`CheckedLabels`):
    one outside ``[0, num_classes)`` is an error that says how to declare the classes.
    """
    target = torch.as_tensor(train[0][1])
    if target.is_floating_point():
        return "regression", max(1, target.numel()), True
    if target.dtype == torch.bool or target.is_complex() or target.numel() != 1:
        raise AlraoUserError(
            f"targets from {file} must be integer class labels or float regression targets, "
            f"got {target.dtype} of shape {tuple(target.shape)}"
        )
    classes = getattr(train, "classes", None)
    labels = _held_labels(train)
    if labels is None and classes is not None:
        return "classification", len(classes), False  # declared: nothing to count
    size = len(train)
    checked = labels is not None or size <= LABEL_SAMPLE
    if labels is None:
        read = range(size) if size <= LABEL_SAMPLE else _spread(size, LABEL_SAMPLE)
        labels = torch.as_tensor([int(torch.as_tensor(train[i][1])) for i in read])
    num_classes = len(classes) if classes is not None else int(labels.max()) + 1
    _check_label_range(labels, num_classes, file, "training")
    return "classification", num_classes, checked


def _check_label_range(labels: Tensor, num_classes: int, file: Path, role: str) -> None:
    low, high = int(labels.min()), int(labels.max())
    if low < 0:
        raise AlraoUserError(f"class labels from {file} must be >= 0, found {low}")
    if high >= num_classes:
        raise AlraoUserError(
            f"the {role} dataset from {file} has the class label {high}, but there are {num_classes} classes "
            f"(labels 0 to {num_classes - 1})",
            hint=_CLASSES_HINT,
        )


def _labels_checked(dataset: Dataset, num_classes: int, file: Path, role: str) -> Dataset:
    """``dataset`` with its labels checked: now where it holds them as a tensor, else as each is read."""
    if isinstance(dataset, InMemoryDataset):
        _check_label_range(dataset.targets, num_classes, file, role)
        return dataset
    return CheckedLabels(dataset, num_classes, file, role)


def _held_labels(dataset: Dataset) -> Tensor | None:
    """The labels of a dataset that holds them as one tensor (a ``TensorDataset`` of two)."""
    if isinstance(dataset, TorchTensorDataset) and len(dataset.tensors) == 2:
        return dataset.tensors[1]
    return None


def _spread(size: int, count: int) -> list[int]:
    """``count`` indices of ``range(size)`` spread evenly, the first and the last included."""
    return [round(i * (size - 1) / (count - 1)) for i in range(count)]


class CheckedLabels(Dataset):
    """A dataset whose labels were sampled, not all read, at load time: each is checked as it is read.

    Attributes not its own are the wrapped dataset's (its ``classes``, ``augmentation``...).
    """

    def __init__(self, dataset: Dataset, num_classes: int, file: Path, role: str = "training") -> None:
        self.dataset = dataset
        self.num_classes = num_classes
        self.file = file
        self.role = role

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        x, y = self.dataset[index]
        label = int(torch.as_tensor(y))
        if not 0 <= label < self.num_classes:
            raise AlraoUserError(
                f"example {index} of the {self.role} dataset from {self.file} has the class label {label}, "
                f"outside the {self.num_classes} classes (0 to {self.num_classes - 1}) known when it was loaded",
                hint=_CLASSES_HINT,
            )
        return x, y

    def __getattr__(self, name: str):
        if name.startswith("__") or name in ("dataset", "num_classes", "file", "role"):
            raise AttributeError(name)  # not the wrapped dataset's (and unpickling asks before __dict__ is set)
        return getattr(self.dataset, name)


def _fast_if_tensors(dataset: Dataset) -> Dataset:
    """A torch ``TensorDataset`` of ``(x, y)`` becomes an :class:`InMemoryDataset` (fast batches)."""
    if isinstance(dataset, TorchTensorDataset) and len(dataset.tensors) == 2:
        return InMemoryDataset(*dataset.tensors)
    return dataset
