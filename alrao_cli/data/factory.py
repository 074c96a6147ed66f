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
    task, num_classes = _infer_task(train, file)
    train, val = _fast_if_tensors(train), _fast_if_tensors(val)
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


def _infer_task(train: Dataset, file: Path) -> tuple[str, int]:
    """Classification for integer targets (num_classes: ``classes`` or max label + 1), regression for floats."""
    target = torch.as_tensor(train[0][1])
    if target.is_floating_point():
        return "regression", max(1, target.numel())
    if target.dtype == torch.bool or target.is_complex() or target.numel() != 1:
        raise AlraoUserError(
            f"targets from {file} must be integer class labels or float regression targets, "
            f"got {target.dtype} of shape {tuple(target.shape)}"
        )
    classes = getattr(train, "classes", None)
    if classes is not None:
        return "classification", len(classes)
    if isinstance(train, TorchTensorDataset) and len(train.tensors) == 2:
        labels = train.tensors[1]
    else:
        labels = torch.as_tensor([int(torch.as_tensor(train[i][1])) for i in range(len(train))])
    if int(labels.min()) < 0:
        raise AlraoUserError(f"class labels from {file} must be >= 0, found {int(labels.min())}")
    return "classification", int(labels.max()) + 1


def _fast_if_tensors(dataset: Dataset) -> Dataset:
    """A torch ``TensorDataset`` of ``(x, y)`` becomes an :class:`InMemoryDataset` (fast batches)."""
    if isinstance(dataset, TorchTensorDataset) and len(dataset.tensors) == 2:
        return InMemoryDataset(*dataset.tensors)
    return dataset
