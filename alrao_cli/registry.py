"""Where architectures come from: the built-in zoo, the user's files, torchvision.

A user names architectures with one string, an ARCH:

- ``path/to/file.py``: every model the file registers with :func:`register_model`;
  otherwise its ``build_model`` function; otherwise the one ``nn.Module`` subclass it defines;
- ``path/to/file.py:Name``: the class or factory function ``Name`` of that file;
- a zoo name such as ``cnn1d`` (``alrao models`` lists them; ``res*`` selects several);
- ``torchvision:resnet18``: a torchvision classification model, always untrained.

:func:`expand_arch` turns an ARCH into *canonical* strings, one per model, and
:func:`build_model` builds one of those. Only the string travels between processes: it
always pickles, where a class defined in a user's file may not, and each process imports
the file again by itself.

Models register timm-style with :func:`register_model`. Registrations are kept per source
file, so that a user's file lists its own models apart from the zoo's.
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from torch import nn

from alrao_cli.alrao.model import lazy_parameters_text
from alrao_cli.errors import AlraoUserError

TORCHVISION_PREFIX = "torchvision:"
# Arguments alrao derives from the data; a user's model arguments may not override them.
DATA_ARGUMENTS = ("num_classes", "input_shape", "in_channels")
# What the `fits` words of the zoo mean, in the words `alrao models` shows.
SHAPE_LABELS = {"sequence": "1-D [L]", "image": "image [C,H,W]"}
# How many dimensions one example has, for each `fits` word: a 1-D signal may carry channels.
SHAPE_RANKS = {"sequence": (1, 2), "image": (3,)}
_GLOB_CHARACTERS = frozenset("*?[")
_ARCH_FORMS = "a .py file, file.py:Name, a zoo name or torchvision:NAME"


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
# Model files imported by path, by resolved path: a file is executed once per process.
_MODULES: dict[Path, ModuleType] = {}


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
    zoo = _zoo_entries()
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
    letters = "".join(character for character in pattern.lower() if character not in "*?[]")
    holding = [name for name in names if letters and letters in name.lower()]
    close = _unique([*holding, *difflib.get_close_matches(letters, names, n=3)])[:3]
    suggestion = f"did you mean {', '.join(close)}? " if close else ""
    return AlraoUserError(f"no {what} matches {pattern!r}", hint=suggestion + listing)


def models_in_file(path: str | Path) -> list[ModelEntry]:
    """The models a file registers, in the order it registers them (imports the file)."""
    source, _ = _import(path)
    return list(_REGISTRY.get(source, {}).values())


def _zoo_entries() -> dict[str, ModelEntry]:
    # Imported here, not at the top: the zoo's files import this module to register.
    zoo = importlib.import_module("alrao_cli.models")
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
    return _import(path)[1]


def _import(path: str | Path) -> tuple[Path, ModuleType]:
    file = Path(path)
    if not file.is_file():
        raise AlraoUserError(
            f"model file not found: {path}",
            hint=f"check the path; a relative path starts from the current directory, {Path.cwd()}",
        )
    source = file.resolve()
    if source not in _MODULES:
        # The zoo is imported first, so that a zoo file given by path is found already
        # imported rather than executed a second time under another name.
        importlib.import_module("alrao_cli.models")
        _MODULES[source] = _already_imported(source) or _execute(source, shown=str(path))
    return source, _MODULES[source]


def _already_imported(source: Path) -> ModuleType | None:
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if file and Path(file).name == source.name and Path(file).resolve() == source:
            return module
    return None


def _execute(source: Path, shown: str) -> ModuleType:
    stem = re.sub(r"\W", "_", source.stem)
    digest = hashlib.sha1(str(source).encode()).hexdigest()[:10]
    module_name = f"_alrao_model_file_{stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, source)
    if spec is None or spec.loader is None:
        raise AlraoUserError(f"cannot import {shown} as Python", hint="give a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickle look classes up here
    folder = str(source.parent)
    sys.path.insert(0, folder)  # so the file can import its siblings
    try:
        spec.loader.exec_module(module)
    except AlraoUserError:
        _forget(source, module_name)
        raise
    except SyntaxError as error:
        _forget(source, module_name)
        where = shown if error.filename is None or Path(error.filename).resolve() == source else error.filename
        raise AlraoUserError(
            f"syntax error in {where}, line {error.lineno}: {error.msg}",
            hint="fix the model file",
        ) from error  # kept, so that --debug shows the offending line
    except (Exception, SystemExit) as error:
        _forget(source, module_name)
        raise AlraoUserError(
            f"importing {shown} failed{_line_in(source, error)}: {type(error).__name__}: {error}",
            hint=f"fix the model file; `python {shown}` shows the full traceback",
        ) from error
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    return module


def _forget(source: Path, module_name: str) -> None:
    """Undo a failed import: no half-executed module, no registrations from it."""
    sys.modules.pop(module_name, None)
    _REGISTRY.pop(source, None)


def _line_in(source: Path, error: BaseException) -> str:
    """`` at line N`` for the last line of ``source`` the error went through, if any."""
    lines = [frame.lineno for frame in traceback.extract_tb(error.__traceback__) if frame.filename == str(source)]
    return f" at line {lines[-1]}" if lines else ""


# -- parsing an ARCH ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Arch:
    """An ARCH taken apart. ``name`` is empty for a bare ``file.py``."""

    kind: Literal["file", "zoo", "torchvision"]
    name: str
    path: str = ""


def _parse(arch: str) -> _Arch:
    text = arch.strip()
    if not text:
        raise AlraoUserError("empty architecture name", hint=f"give {_ARCH_FORMS}")
    if text.startswith(TORCHVISION_PREFIX):
        name = text[len(TORCHVISION_PREFIX):]
        if not name:
            raise AlraoUserError(f"no model name after {TORCHVISION_PREFIX!r}", hint="e.g. torchvision:resnet18")
        return _Arch("torchvision", name)
    if text.endswith(".py"):
        return _Arch("file", "", text)
    path, colon, name = text.rpartition(":")
    if colon and path.endswith(".py"):
        if not name:
            raise AlraoUserError(f"no model name after the colon in {arch!r}", hint=f"write {path}:Name")
        return _Arch("file", name, path)
    if "/" in text or "\\" in text:
        raise AlraoUserError(f"{arch!r} is not a Python file", hint=f"give {_ARCH_FORMS}")
    return _Arch("zoo", text)


def _is_pattern(name: str) -> bool:
    return not _GLOB_CHARACTERS.isdisjoint(name)


# -- expanding an ARCH --------------------------------------------------------------------
def expand_arch(arch: str) -> list[str]:
    """One canonical ARCH per model that ``arch`` names, each accepted by :func:`build_model`.

    A file is imported (to see what it defines) but no model is built. Canonical forms
    are ``file.py:Name`` (with the path as the user wrote it), a zoo name, and
    ``torchvision:name``.
    """
    parsed = _parse(arch)
    if parsed.kind == "file":
        return [f"{parsed.path}:{name}" for name in _file_model_names(parsed)]
    if parsed.kind == "zoo":
        return _expand_zoo(parsed.name)
    return [TORCHVISION_PREFIX + name for name in _expand_torchvision(parsed.name)]


def _file_model_names(parsed: _Arch) -> list[str]:
    source, module = _import(parsed.path)
    if parsed.name:
        _lookup_in_file(module, source, parsed)
        return [parsed.name]
    registered = list(_REGISTRY.get(source, {}))
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


def _lookup_in_file(module: ModuleType, source: Path, parsed: _Arch) -> Callable[..., Any]:
    if not hasattr(module, parsed.name):
        model_like = _unique([*_REGISTRY.get(source, {}), *_module_classes(module), *_build_model_of(module)])
        defined = [
            name
            for name, v in vars(module).items()
            if not name.startswith("_") and (inspect.isclass(v) or inspect.isfunction(v))
        ]
        close = difflib.get_close_matches(parsed.name, _unique([*model_like, *defined]), n=1)
        suggestion = f"did you mean {close[0]!r}? " if close else ""
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
    zoo = _zoo_entries()
    if _is_pattern(name):
        return [entry.name for entry in find_zoo(name)]
    if name not in zoo:
        close = difflib.get_close_matches(name.lower(), list(zoo), n=3)
        suggestion = f"did you mean {', '.join(close)}? " if close else ""
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
        close = difflib.get_close_matches(name.lower(), known, n=3)
        suggestion = f"did you mean {', '.join(close)}?" if close else ""
        raise AlraoUserError(
            f"torchvision has no classification model {name!r}",
            hint=f"{suggestion} `alrao models --torchvision` lists them".lstrip(),
        )
    return [name]


# -- building -----------------------------------------------------------------------------
def build_model(
    arch: str, num_classes: int, input_shape: tuple[int, ...], kwargs: dict[str, Any] | None = None
) -> nn.Module:
    """Build the one model ``arch`` names, untrained, for this data.

    The factory (or class) receives, among ``num_classes``, ``input_shape``,
    ``in_channels`` (``input_shape[0]`` for ``[C, ...]`` examples, 1 for ``[L]``) and the
    user's ``kwargs``, those its signature accepts (``**kwargs`` accepts all). torchvision
    models get ``num_classes``, ``weights=None`` (nothing is downloaded) and ``kwargs``.
    """
    canonical = _single(arch)
    user_kwargs = dict(kwargs or {})
    parsed = _parse(canonical)
    _check_reserved(arch, parsed, user_kwargs)
    if parsed.kind == "torchvision":
        import torchvision.models

        factory: Callable[..., Any] = torchvision.models.get_model
        arguments = {"name": parsed.name, "weights": None, "num_classes": num_classes, **user_kwargs}
    else:
        factory = _factory(parsed)
        offered = {
            "num_classes": num_classes,
            "input_shape": tuple(input_shape),
            "in_channels": input_shape[0] if len(input_shape) >= 2 else 1,
        }
        arguments = _arguments_for(canonical, factory, offered, user_kwargs)
    return _call(canonical, factory, arguments)


def check_model_arguments(arch: str, kwargs: dict[str, Any]) -> None:
    """Raise the error :func:`build_model` would raise for these model arguments, building nothing.

    A study checks its config's ``model_kwargs`` this way before anything trains, so that
    a misspelt argument is a usage error naming the config key rather than a failed run.
    A factory taking ``**kwargs`` (torchvision's among them) accepts any name here.
    """
    canonical = _single(arch)
    parsed = _parse(canonical)
    _check_reserved(arch, parsed, kwargs)
    if parsed.kind != "torchvision":
        parameters = _keyword_signature(_factory(parsed))
        if parameters is not None:
            _accepted_names(canonical, parameters, kwargs)


def _single(arch: str) -> str:
    """The one canonical ARCH that ``arch`` names; naming several is an error."""
    canonical = expand_arch(arch)
    if len(canonical) != 1:
        raise AlraoUserError(
            f"{arch} names {len(canonical)} models; build them one at a time",
            hint=f"use one of: {', '.join(canonical)}",
        )
    return canonical[0]


def _check_reserved(arch: str, parsed: _Arch, user_kwargs: dict[str, Any]) -> None:
    reserved = {*DATA_ARGUMENTS, "weights"} if parsed.kind == "torchvision" else set(DATA_ARGUMENTS)
    overridden = sorted(set(user_kwargs) & reserved)
    if overridden:
        raise AlraoUserError(
            f"model argument(s) {', '.join(overridden)} cannot be set for {arch}",
            hint="alrao sets num_classes, input_shape and in_channels from the data, "
            "and builds torchvision models untrained",
        )


def _factory(parsed: _Arch) -> Callable[..., Any]:
    if parsed.kind == "zoo":
        return _zoo_entries()[parsed.name].factory
    source, module = _import(parsed.path)
    return _lookup_in_file(module, source, parsed)


def _keyword_signature(factory: Callable[..., Any]) -> list[inspect.Parameter] | None:
    """The factory's parameters; None when it takes any keyword (``**kwargs``, or no signature to read)."""
    try:
        parameters = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):  # no signature to read (a builtin): let the call decide
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return parameters


def _accepted_names(arch: str, parameters: list[inspect.Parameter], user_kwargs: dict[str, Any]) -> list[str]:
    """The names the parameters take by keyword; a user's argument among none of them is an error."""
    by_keyword = [
        p.name
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]
    rejected = sorted(set(user_kwargs) - set(by_keyword))
    if rejected:
        settable = [name for name in by_keyword if name not in DATA_ARGUMENTS]
        raise AlraoUserError(
            f"{arch} does not take the model argument(s) {', '.join(rejected)}",
            hint=f"it takes: {', '.join(settable)}" if settable else "it takes no model arguments",
        )
    return by_keyword


def _arguments_for(
    arch: str, factory: Callable[..., Any], offered: dict[str, Any], user_kwargs: dict[str, Any]
) -> dict[str, Any]:
    """The keyword arguments ``factory``'s signature takes, from the offered and the user's."""
    everything = {**offered, **user_kwargs}
    parameters = _keyword_signature(factory)
    if parameters is None:
        return everything
    by_keyword = _accepted_names(arch, parameters, user_kwargs)
    arguments = {name: value for name, value in everything.items() if name in by_keyword}
    missing = [
        p.name
        for p in parameters
        if p.default is inspect.Parameter.empty
        and p.kind is not inspect.Parameter.VAR_POSITIONAL
        and p.name not in arguments
    ]
    if missing:
        raise AlraoUserError(
            f"{arch} needs the argument(s) {', '.join(missing)}, which alrao cannot supply",
            hint="give them default values, or pass them as model arguments",
        )
    return arguments


def _call(arch: str, factory: Callable[..., Any], arguments: dict[str, Any]) -> nn.Module:
    try:
        model = factory(**arguments)
    except AlraoUserError:
        raise
    except Exception as error:
        raise AlraoUserError(
            f"building {arch} failed: {type(error).__name__}: {error}",
            hint="check the model's code and the arguments given to it",
        ) from error
    if not isinstance(model, nn.Module):
        raise AlraoUserError(
            f"{arch} returned a {type(model).__name__}, not an nn.Module",
            hint="a model factory must return the model (an nn.Module instance)",
        )
    return model


def count_parameters(model: nn.Module) -> int:
    """How many trainable numbers the model has (shared parameters counted once).

    A lazy layer (``nn.LazyLinear``, ``nn.LazyConv2d``...) has no size until its first
    forward pass; counting before one is an error that says so, never a wrong number.
    """
    lazy = lazy_parameters_text(model)
    if lazy:
        raise ValueError(
            f"cannot count the parameters of {type(model).__name__} yet: {lazy} not initialized "
            "(lazy layers take their size from the first input); count them after a forward pass"
        )
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
