"""What ``alrao models`` lists: the zoo's models with their size, or torchvision's classifiers.

The numbers are computed here, where models are built, and handed to the report layer as
plain rows: presentation code prints them and never builds a model. A zoo model's size is
counted on MNIST-1D's shapes (10 classes, examples of 40 values), the data a screen uses
when none is given, so that two sizes in the listing compare.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alrao_cli.sources.build import build_model, count_parameters
from alrao_cli.sources.registry import find_torchvision_models, find_zoo

MNIST1D_CLASSES = 10
MNIST1D_SHAPE = (40,)


@dataclass(frozen=True, slots=True)
class ZooRow:
    """One zoo model as listed: its name, parameters on MNIST-1D, the inputs it fits, one line on it."""

    name: str
    params_mnist1d: int
    fits: str  # e.g. "1-D [L]", in the words of registry.SHAPE_LABELS
    description: str

    def to_dict(self) -> dict[str, Any]:
        """The row as ``alrao models --json`` prints it (the keys in this order)."""
        return {
            "name": self.name,
            "params_mnist1d": self.params_mnist1d,
            "fits": self.fits,
            "description": self.description,
        }


def zoo_rows(pattern: str = "*") -> list[ZooRow]:
    """The zoo models matching ``pattern``, each built once on MNIST-1D's shapes to count its parameters.

    A pattern that matches nothing raises :class:`~alrao_cli.errors.AlraoUserError` naming
    the closest models.
    """
    return [
        ZooRow(
            name=entry.name,
            params_mnist1d=count_parameters(build_model(entry.name, MNIST1D_CLASSES, MNIST1D_SHAPE)),
            fits=entry.fits_label(),
            description=entry.description,
        )
        for entry in find_zoo(pattern)
    ]


def torchvision_archs(pattern: str = "*") -> list[str]:
    """torchvision's classifiers matching ``pattern``, as ARCH names (``torchvision:resnet18``).

    A pattern that matches nothing raises :class:`~alrao_cli.errors.AlraoUserError`.
    """
    return [f"torchvision:{name}" for name in find_torchvision_models(pattern)]
