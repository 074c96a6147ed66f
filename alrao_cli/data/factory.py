"""``python:FILE.py:FACTORY``: the user's own function returning training and validation datasets."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from alrao_cli.data.checks import Expected, expected_from
from alrao_cli.data.datasets import InMemoryDataset, LoadedData
from alrao_cli.data.factory_items import CheckedItems, check_item, held, read_item, sample_positions
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
    classes = getattr(train, "classes", None)
    train, val = held(train), held(val)
    name = spec.source
    # Read now, so that a bad item stops the study before training: a sample of what is not held as tensors.
    train_sample = _sample(train, name, "training") if classes is None else []
    expected = _expected(name, train, classes, train_sample, file)
    for role, items in (("training", train_sample), ("validation", _sample(val, name, "validation"))):
        for index, x, y in items:
            check_item(index, x, y, expected, role)
    train, val = _checked(train, expected, "training"), _checked(val, expected, "validation")
    if spec.subset is not None:
        train = take_shuffled(train, spec.subset, spec.seed)
        val = take_shuffled(val, max(1, spec.subset // 4), spec.seed)
    return loaded(name, expected.num_classes, train, val, expected.task)


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


Sample = list[tuple[int, Tensor, Tensor]]
"""Items read at load time: ``(index, x, y)``, in a model's types."""


def _sample(dataset: Dataset, name: str, role: str) -> Sample:
    """The items of ``dataset`` at :func:`~alrao_cli.data.factory_items.sample_positions`; none of held tensors."""
    if isinstance(dataset, InMemoryDataset):
        return []  # checked whole by loaded()
    return [(index, *read_item(dataset, index, name, role)) for index in sample_positions(len(dataset))]


def _expected(name: str, train: Dataset, classes: Sequence[object] | None, sample: Sample, file: Path) -> Expected:
    """The task, its number of classes (outputs, for regression), and what every item must be, from the training data.

    The first item decides the task: an integer target is a class label, a float target
    a regression target (as many outputs as it has values). The number of classes is the
    length of the dataset's ``classes`` attribute where it has one, else the largest
    label plus one, without reading a large dataset through: labels held as one tensor
    are all read, otherwise those of ``sample``. Labels not read here are checked when
    training reads them.
    """
    first = (sample[0][1], sample[0][2]) if sample else read_item(train, 0, name, "training")
    target = first[1]
    if target.is_floating_point():
        return expected_from(name, "regression", max(1, target.numel()), first)
    if target.dtype == torch.bool or target.is_complex() or target.numel() != 1:
        raise AlraoUserError(
            f"targets from {file} must be integer class labels or float regression targets, "
            f"got {str(target.dtype).removeprefix('torch.')} of shape {list(target.shape)}"
        )
    if classes is not None:
        return expected_from(name, "classification", len(classes), first)
    if isinstance(train, InMemoryDataset):
        largest = int(train.targets.max())
    else:
        largest = max(int(y) for _, _, y in sample if y.numel() == 1 and not y.is_floating_point())
    return expected_from(name, "classification", largest + 1, first)


def _checked(dataset: Dataset, expected: Expected, role: str) -> Dataset:
    """Held tensors as they are (:func:`~alrao_cli.data.splits.loaded` checks them whole); any
    other dataset checked item by item as training reads it."""
    return dataset if isinstance(dataset, InMemoryDataset) else CheckedItems(dataset, expected, role)
