"""What is checked before training: every example held as tensors, against what the first training example says they all are.

Nothing else stops a bad example: a NaN input or an out-of-range label surfaces as a
model's failure (a crash in the loss, a diverged run) after minutes of training, and
every architecture of the screen is blamed for it. Checked when the data is loaded, it
is one line naming the dataset and the item (:mod:`alrao_cli.data.problems`).

The checks are vectorised over whole tensors, a few reductions each, so that they cost
next to nothing beside loading, and read no file again. A dataset that is not held as
tensors (a large image folder, a factory's own ``Dataset``) is checked as its items are
read: images by :class:`~alrao_cli.data.datasets.LazyImageDataset`, a factory's items by
:class:`~alrao_cli.data.factory_items.CheckedItems`, both through the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import Dataset

from alrao_cli.data.datasets import InMemoryDataset
from alrao_cli.data.problems import data_problem
from alrao_cli.errors import AlraoUserError

CLASSES_HINT = (
    "labels run from 0 to K-1, where K is the length of the training dataset's `classes` attribute, "
    "else its largest label plus one"
)
_TASK_HINT = "the first training item sets the task: an integer label makes a classification, a float target a regression"


@dataclass(frozen=True, slots=True)
class Expected:
    """What every example of a study's data must be, as its first training example shows.

    ``name`` is the data source, for the line that names a bad item; ``target_shape`` is
    ``()`` for a class label, the shape of one regression target otherwise.
    """

    name: str
    task: str
    num_classes: int
    input_shape: tuple[int, ...]
    target_shape: tuple[int, ...]


def expected_from(name: str, task: str, num_classes: int, first: tuple[object, object]) -> Expected:
    """What the first training item ``(x, y)`` (as a model takes it) says every item must be."""
    x, y = (torch.as_tensor(part) for part in first)
    return Expected(name, task, num_classes, tuple(x.shape), tuple(y.shape))


def check_loaded(train: Dataset, val: Dataset, expected: Expected) -> None:
    """Check a study's two datasets before any model trains; raise the one line for the first problem."""
    if len(train) < 2:
        raise data_problem(
            expected.name, None, f"{len(train)} training example: too few to train on",
            hint="give it at least two (or a larger --subset)",
        )
    for role, dataset in (("training", train), ("validation", val)):
        if isinstance(dataset, InMemoryDataset):
            check_examples(dataset.inputs, dataset.targets, dataset.positions, expected, role)
    if expected.task == "classification":
        _check_two_classes(train, expected)


def check_examples(inputs: Tensor, targets: Tensor, positions: Tensor, expected: Expected, role: str) -> None:
    """Examples (first dimension) against ``expected``; ``positions`` are their indices, for the message."""
    if tuple(inputs.shape[1:]) != expected.input_shape:
        raise _at(
            expected, role, positions[0],
            f"the input is shaped {list(inputs.shape[1:])}, the first training item's {list(expected.input_shape)}",
            hint="give every item's input the same shape",
        )
    if inputs.is_floating_point():
        _check_finite(inputs, positions, expected, role, "the input")
    if expected.task == "classification":
        _check_labels(targets, positions, expected, role)
    else:
        _check_regression_targets(targets, positions, expected, role)


def _check_labels(labels: Tensor, positions: Tensor, expected: Expected, role: str) -> None:
    integer = not (labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool)
    if not integer or labels.dim() != 1:
        value = labels[0].tolist()
        raise _at(
            expected, role, positions[0], f"label {value} ({_dtype(labels)}) is not an integer class label",
            hint=f"give every item an integer class label ({_TASK_HINT})",
        )
    below = labels < 0
    if below.any():
        index = _first(below)
        raise _at(
            expected, role, positions[index], f"label {int(labels[index])} is negative", hint=CLASSES_HINT
        )
    count = expected.num_classes
    above = labels >= count
    if above.any():
        index = _first(above)
        raise _at(
            expected, role, positions[index],
            f"label {int(labels[index])} is outside the {count} classes (0 to {count - 1})", hint=CLASSES_HINT,
        )


def _check_regression_targets(targets: Tensor, positions: Tensor, expected: Expected, role: str) -> None:
    if not targets.is_floating_point():
        raise _at(
            expected, role, positions[0], f"target {targets[0].tolist()} ({_dtype(targets)}) is not a float", hint=_TASK_HINT
        )
    if tuple(targets.shape[1:]) != expected.target_shape:
        raise _at(
            expected, role, positions[0],
            f"the target is shaped {list(targets.shape[1:])}, the first training item's {list(expected.target_shape)}",
            hint="give every item a target of the same shape",
        )
    _check_finite(targets, positions, expected, role, "the target")


def _check_finite(values: Tensor, positions: Tensor, expected: Expected, role: str, what: str) -> None:
    """One sum first (a NaN or an infinity anywhere makes it non-finite); rows are looked at only if it is not."""
    if torch.isfinite(values.sum()):
        return
    bad = ~torch.isfinite(values.reshape(len(values), -1)).all(dim=1)
    if bad.any():  # else the sum overflowed: every value is finite
        raise _at(
            expected, role, positions[_first(bad)], f"{what} has NaN or infinite values",
            hint="clean or drop the example",
        )


def _check_two_classes(train: Dataset, expected: Expected) -> None:
    """A classifier of one class learns nothing, and its validation accuracy is 100 %."""
    if expected.num_classes < 2:
        raise data_problem(
            expected.name, None, "one class only: a classification needs at least two",
            hint="add examples of another class (an image folder needs a subfolder per class)",
        )
    if isinstance(train, InMemoryDataset):
        labels = train.targets
        if not bool((labels != labels[0]).any()):
            raise data_problem(
                expected.name, None,
                f"every training example is of class {int(labels[0])}: a classification needs two classes or more",
                hint="give the training set examples of other classes (a small --subset may hold only one)",
            )


def _first(mask: Tensor) -> int:
    return int(mask.nonzero()[0, 0])


def _dtype(values: Tensor) -> str:
    return str(values.dtype).removeprefix("torch.")


def _at(expected: Expected, role: str, position: Tensor | int, problem: str, hint: str) -> AlraoUserError:
    return data_problem(expected.name, f"{role} item {int(position)}", problem, hint=hint)
