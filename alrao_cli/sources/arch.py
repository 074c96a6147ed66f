"""The ARCH grammar: what one string a user writes names, and the models it expands to.

- ``path/to/file.py``: every model the file registers with ``register_model``;
  otherwise its ``build_model`` function; otherwise the one ``nn.Module`` subclass it defines;
- ``path/to/file.py:Name``: the class or factory function ``Name`` of that file;
- a zoo name such as ``cnn1d`` (``alrao models`` lists them; ``res*`` selects several);
- ``torchvision:resnet18``: a torchvision classification model, always untrained.

:func:`expand_arch` turns an ARCH into *canonical* strings, one per model. Only the
string travels between processes: it always pickles, where a class defined in a user's
file may not, and each process imports the file again by itself."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal
from torch import nn
from alrao_cli.errors import AlraoUserError
from alrao_cli.util.suggest import did_you_mean
from alrao_cli.sources.registry import find_torchvision_models, find_zoo, import_model_source, list_torchvision_models, registered_in, zoo_entries


TORCHVISION_PREFIX = "torchvision:"


_GLOB_CHARACTERS = frozenset("*?[")


_ARCH_FORMS = "a .py file, file.py:Name, a zoo name or torchvision:NAME"


# -- parsing an ARCH ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Arch:
    """An ARCH taken apart. ``name`` is empty for a bare ``file.py``."""

    kind: Literal["file", "zoo", "torchvision"]
    name: str
    path: str = ""


def parse_arch(arch: str) -> Arch:
    text = arch.strip()
    if not text:
        raise AlraoUserError("empty architecture name", hint=f"give {_ARCH_FORMS}")
    if text.startswith(TORCHVISION_PREFIX):
        name = text[len(TORCHVISION_PREFIX):]
        if not name:
            raise AlraoUserError(f"no model name after {TORCHVISION_PREFIX!r}", hint="e.g. torchvision:resnet18")
        return Arch("torchvision", name)
    if text.endswith(".py"):
        return Arch("file", "", text)
    path, colon, name = text.rpartition(":")
    if colon and path.endswith(".py"):
        if not name:
            raise AlraoUserError(f"no model name after the colon in {arch!r}", hint=f"write {path}:Name")
        return Arch("file", name, path)
    if "/" in text or "\\" in text:
        raise AlraoUserError(f"{arch!r} is not a Python file", hint=f"give {_ARCH_FORMS}")
    return Arch("zoo", text)


def _is_pattern(name: str) -> bool:
    return not _GLOB_CHARACTERS.isdisjoint(name)


# -- expanding an ARCH --------------------------------------------------------------------
def expand_arch(arch: str) -> list[str]:
    """One canonical ARCH per model that ``arch`` names, each accepted by :func:`build_model`.

    A file is imported (to see what it defines) but no model is built. Canonical forms
    are ``file.py:Name`` (with the path as the user wrote it), a zoo name, and
    ``torchvision:name``.
    """
    parsed = parse_arch(arch)
    if parsed.kind == "file":
        return [f"{parsed.path}:{name}" for name in _file_model_names(parsed)]
    if parsed.kind == "zoo":
        return _expand_zoo(parsed.name)
    return [TORCHVISION_PREFIX + name for name in _expand_torchvision(parsed.name)]


def _file_model_names(parsed: Arch) -> list[str]:
    source, module = import_model_source(parsed.path)
    if parsed.name:
        lookup_in_file(module, source, parsed)
        return [parsed.name]
    registered = list(registered_in(source))
    if registered:
        return registered
    if _build_model_of(module):
        return _build_model_of(module)
    classes = _module_classes(module)
    if len(classes) == 1:
        return classes
    if classes:
        raise AlraoUserError(
            f"{parsed.path} defines several models ({', '.join(classes)}) and registers none",
            hint=f"pick one with {parsed.path}:{classes[0]}, or register them with @register_model",
        )
    raise AlraoUserError(
        f"{parsed.path} defines no model: no @register_model, no build_model, no nn.Module subclass",
        hint=f"define one there, or name what you import with {parsed.path}:Name",
    )


def _module_classes(module: ModuleType) -> list[str]:
    """The ``nn.Module`` subclasses defined in the file itself (not imported into it)."""
    return [
        name
        for name, value in vars(module).items()
        if inspect.isclass(value) and issubclass(value, nn.Module) and value.__module__ == module.__name__
    ]


def lookup_in_file(module: ModuleType, source: Path, parsed: Arch) -> Callable[..., Any]:
    if not hasattr(module, parsed.name):
        model_like = _unique([*registered_in(source), *_module_classes(module), *_build_model_of(module)])
        defined = [
            name
            for name, v in vars(module).items()
            if not name.startswith("_") and (inspect.isclass(v) or inspect.isfunction(v))
        ]
        suggestion = did_you_mean(parsed.name, _unique([*model_like, *defined]))
        found = f"models in the file: {', '.join(model_like)}" if model_like else "the file defines no model"
        raise AlraoUserError(f"{parsed.path} defines no {parsed.name!r}", hint=suggestion + found)
    value = getattr(module, parsed.name)
    if isinstance(value, nn.Module) or not callable(value):
        raise AlraoUserError(
            f"{parsed.path}:{parsed.name} is a {type(value).__name__}, not a class or a function",
            hint="name a class or a function that builds the model",
        )
    return value


def _build_model_of(module: ModuleType) -> list[str]:
    return ["build_model"] if callable(getattr(module, "build_model", None)) else []


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _expand_zoo(name: str) -> list[str]:
    zoo = zoo_entries()
    if _is_pattern(name):
        return [entry.name for entry in find_zoo(name)]
    if name not in zoo:
        suggestion = did_you_mean(name, list(zoo), n=3)
        raise AlraoUserError(
            f"unknown model {name!r}: not a zoo model",
            hint=f"{suggestion}`alrao models` lists the zoo; an ARCH can also be file.py, file.py:Name "
            "or torchvision:NAME",
        )
    return [name]


def _expand_torchvision(name: str) -> list[str]:
    if _is_pattern(name):
        return find_torchvision_models(name)
    known = list_torchvision_models()
    if name not in known:
        raise AlraoUserError(
            f"torchvision has no classification model {name!r}",
            hint=f"{did_you_mean(name, known, n=3)}`alrao models --torchvision` lists them",
        )
    return [name]
