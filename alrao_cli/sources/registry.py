"""The model registry, the size of timm's: register a factory, list, look up, find the closest names.

Models register timm-style with :func:`register_model` (the zoo's index, ``models/__init__.py``,
and a user's own files). The ARCH grammar is :mod:`alrao_cli.sources.arch`; building, :mod:`alrao_cli.sources.build`. Registrations are kept per source
file, so that a user's file lists its own models apart from the zoo's.
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.util
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from torch import nn

from alrao_cli.errors import AlraoUserError
from alrao_cli.util.pyfile import import_user_file
from alrao_cli.util.suggest import did_you_mean

# What the `fits` words of the zoo mean, in the words `alrao models` shows.
SHAPE_LABELS = {"sequence": "1-D [L]", "image": "image [C,H,W]"}
# How many dimensions one example has, for each `fits` word: a 1-D signal may carry channels.
SHAPE_RANKS = {"sequence": (1, 2), "image": (3,)}


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """A registered model: its name, one line for ``alrao models``, the inputs it fits, its factory."""

    name: str
    description: str
    fits: tuple[str, ...]
    factory: Callable[..., nn.Module]

    def fits_label(self) -> str:
        """The input shapes it fits, as users read them: ``1-D [L], image [C,H,W]``."""
        return ", ".join(SHAPE_LABELS.get(fit, fit) for fit in self.fits)

    def fits_shape(self, input_shape: tuple[int, ...]) -> bool:
        """Whether the model takes examples shaped ``input_shape`` (``[40]``, ``[3, 32, 32]``).

        A ``fits`` word alrao does not know is the author's own and cannot be checked, so
        it never rules a model out.
        """
        if any(fit not in SHAPE_RANKS for fit in self.fits):
            return True
        return any(len(input_shape) in SHAPE_RANKS[fit] for fit in self.fits)


# Registered models, by the resolved path of the file that defines them, in registration order.
_REGISTRY: dict[Path, dict[str, ModelEntry]] = {}


# -- registration ------------------------------------------------------------------------
def register_model(
    description: str, fits: tuple[str, ...] = ("sequence", "image")
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register a model factory (or class) under its own name.

    ``description`` is one line shown by ``alrao models``; ``fits`` says which example
    shapes the model takes (``"sequence"`` for ``[L]``, ``"image"`` for ``[C, H, W]``, or
    any words of your own). The factory is returned unchanged.
    """
    if not isinstance(description, str):
        raise TypeError('register_model needs a description: write @register_model("what it is")')
    if not description.strip() or "\n" in description:
        raise ValueError(f"a model description must be one non-empty line, got {description!r}")
    if isinstance(fits, str) or not fits or not all(isinstance(fit, str) for fit in fits):
        raise TypeError(f"fits must be a non-empty tuple of strings, got {fits!r}")

    def record(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        source = Path(inspect.getfile(factory)).resolve()
        entry = ModelEntry(factory.__name__, description.strip(), tuple(fits), factory)
        _REGISTRY.setdefault(source, {})[entry.name] = entry
        return factory

    return record


# -- listing -------------------------------------------------------------------------------
def natural_key(name: str) -> list[int | str]:
    """Sort key that orders the numbers inside names by value: resnet18 < resnet101."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _matches(name: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(name.lower(), pattern.lower())


def list_zoo(pattern: str = "*") -> list[ModelEntry]:
    """The built-in models whose name matches ``pattern`` (shell-style, any case), sorted naturally."""
    zoo = zoo_entries()
    return [zoo[name] for name in sorted(zoo, key=natural_key) if _matches(name, pattern)]


def list_torchvision_models(pattern: str = "*") -> list[str]:
    """torchvision's classification models (not detection, segmentation...) matching ``pattern``."""
    import torchvision.models  # slow to import: only when asked

    names = torchvision.models.list_models(module=torchvision.models)
    return sorted((name for name in names if _matches(name, pattern)), key=natural_key)


def find_zoo(pattern: str) -> list[ModelEntry]:
    """:func:`list_zoo`, but a pattern that matches nothing is an error naming the closest models."""
    entries = list_zoo(pattern)
    if not entries:
        names = [entry.name for entry in list_zoo()]
        listing = f"`alrao models` lists the zoo: {', '.join(names)}"
        raise _no_match(pattern, names, "zoo model", listing)
    return entries


def find_torchvision_models(pattern: str) -> list[str]:
    """:func:`list_torchvision_models`, but a pattern that matches nothing is an error."""
    names = list_torchvision_models(pattern)
    if not names:
        listing = "`alrao models --torchvision` lists them all"
        raise _no_match(pattern, list_torchvision_models(), "torchvision classification model", listing)
    return names


def _no_match(pattern: str, names: list[str], what: str, listing: str) -> AlraoUserError:
    """A pattern that matches nothing: say so, with the names that hold or resemble its letters."""
    letters = "".join(character for character in pattern if character not in "*?[]")
    return AlraoUserError(f"no {what} matches {pattern!r}", hint=did_you_mean(letters, names, n=3) + listing)


def registered_in(source: Path) -> dict[str, ModelEntry]:
    """The models the file at the resolved path ``source`` registered, by name (none if it did not)."""
    return _REGISTRY.get(source, {})


def models_in_file(path: str | Path) -> list[ModelEntry]:
    """The models a file registers, in the order it registers them (imports the file)."""
    source, _ = import_model_source(path)
    return list(_REGISTRY.get(source, {}).values())


def zoo_entries() -> dict[str, ModelEntry]:
    # Imported here, not at the top: the zoo's files import this module to register.
    zoo = importlib.import_module("alrao_cli.zoo")
    zoo_dir = Path(zoo.__file__).resolve().parent
    return {
        name: entry
        for source, entries in _REGISTRY.items()
        if source.parent == zoo_dir
        for name, entry in entries.items()
    }


# -- importing a model file ---------------------------------------------------------------
def import_model_file(path: str | Path) -> ModuleType:
    """Import a Python file by path, once per process, with its directory importable.

    The module gets a name unique to the file's resolved path, so two ``model.py`` in
    different folders do not collide, and importing the same file again (by any spelling
    of its path) gives back the same module. A file already imported the ordinary way
    (a zoo file) is reused rather than executed twice.
    """
    return import_model_source(path)[1]


def import_model_source(path: str | Path) -> tuple[Path, ModuleType]:
    # The zoo is imported first, so that a zoo file given by path is found already
    # imported rather than executed a second time under another name.
    importlib.import_module("alrao_cli.zoo")
    return import_user_file(path, what="model file", on_forget=_forget)


def _forget(source: Path) -> None:
    """Undo a failed import: no registrations from a half-executed file."""
    _REGISTRY.pop(source, None)
