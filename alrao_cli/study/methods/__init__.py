"""The registry of training methods: Alrao and every method it is compared with.

A method is one file in this folder: a :class:`~alrao_cli.study.methods.base.TrainingMethod`
subclass decorated with ``@register_method("name")``, and, if it has options, a frozen
dataclass of them (a :class:`~alrao_cli.study.spec.MethodOptions`). The plan, the training
loop, the results and the reports read only what the class declares (``label``,
``tuned_over_grid``, ``default_lr``, ``options_type``); adding a method touches no other
module but the list of built-in files below. docs/methods.md walks through an example.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, fields

from alrao_cli.errors import AlraoUserError
from alrao_cli.study.methods.base import TrainingMethod
from alrao_cli.study.spec import MethodSpec
from alrao_cli.util.suggest import did_you_mean

METHODS: dict[str, TrainingMethod] = {}

# The files of the built-in methods, imported on first use of the registry: each
# registers itself. Order is the order methods are listed and run in.
BUILT_IN = (
    "alrao", "sgd", "adam", "hypergradient", "mlhd", "larc", "onecycle", "layerwise", "dadapt", "dog",
    "schedule_free", "mlrsnet", "reversible_hd",
)


def register_method(name: str):
    """Class decorator: make a :class:`TrainingMethod` available under ``name``."""

    def register(cls: type[TrainingMethod]) -> type[TrainingMethod]:
        cls.name = name
        cls.label = cls.__dict__.get("label", name)  # a registered subclass gets its own label
        METHODS[name] = cls()
        return cls

    return register


def _registry() -> dict[str, TrainingMethod]:
    """Every method: the built-in ones in :data:`BUILT_IN` order, then others as registered."""
    for module in BUILT_IN:
        importlib.import_module(f"{__name__}.{module}")
    modules = [f"{__name__}.{module}" for module in BUILT_IN]  # a file may register a family of methods
    built_in = sorted((name for name in METHODS if type(METHODS[name]).__module__ in modules),
                      key=lambda name: modules.index(type(METHODS[name]).__module__))
    return {**{name: METHODS[name] for name in built_in}, **METHODS}


def get_method(name: str) -> TrainingMethod:
    methods = _registry()
    if name not in methods:
        raise AlraoUserError(
            f"unknown method {name!r}", hint=did_you_mean(name, methods) + f"known methods: {', '.join(methods)}"
        )
    return methods[name]


def baseline_methods() -> list[TrainingMethod]:
    """The methods Alrao can be compared with, in the order they were registered."""
    return [method for method in _registry().values() if method.baseline]


def described(spec: MethodSpec) -> dict[str, object]:
    """What a run's result saves about its method, so that reports and fidelity tables need
    no registry: its label, whether it is tuned over a grid, and how many runs it costs."""
    method = get_method(spec.name)
    return {"method_label": method.label, "tuned_over_grid": method.tuned_over_grid,
            "training_runs": method.training_runs(spec)}


@dataclass(frozen=True, slots=True)
class MethodInfo:
    """One line of ``alrao methods``: what a method is, where it comes from, what it costs."""

    name: str  # as --method takes it; a method tuned over the grid is NAME-grid for --baseline
    label: str
    summary: str  # the first line of its class docstring
    paper: str  # the reference it implements, where the class names one
    defaults: dict[str, object]  # its typed options at their defaults
    cost: str  # in runs per architecture and seed


def method_catalog() -> list[MethodInfo]:
    """Every registered method, in the registry's order, described from its class alone."""
    catalog = []
    for name, method in _registry().items():
        doc = (type(method).__doc__ or "").strip().splitlines()
        options = method.options_type()
        cost = "one run per --grid rate" if method.tuned_over_grid else getattr(method, "cost", "one run")
        catalog.append(
            MethodInfo(
                name=name, label=method.label, summary=doc[0].replace("``", "") if doc else "", paper=getattr(method, "paper", ""),
                defaults={field.name: getattr(options, field.name) for field in fields(options)}, cost=cost,
            )
        )
    return catalog
