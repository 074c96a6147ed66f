"""Import a user's Python file by its path: model files and data factories alike.

One importer, so that both kinds of user file behave the same way: the file's folder is
importable while it runs (it may import its siblings), the module gets a name unique to
its resolved path (two ``model.py`` in different folders do not collide), it is executed
once per process (any spelling of its path gives back the same module, and a file
already imported the ordinary way, such as a zoo file, is reused), and whatever goes
wrong while importing becomes one :class:`~alrao_cli.errors.AlraoUserError` naming the
file and line.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from alrao_cli.errors import AlraoUserError

# Imported user files, by resolved path.
_MODULES: dict[Path, ModuleType] = {}
# The SHA-256 of the text each of them was executed from, by resolved path.
_DIGESTS: dict[Path, str] = {}


def import_user_file(
    path: str | Path,
    *,
    what: str = "python file",
    on_forget: Callable[[Path], None] | None = None,
) -> tuple[Path, ModuleType]:
    """The resolved path of ``path`` and its module, importing the file the first time.

    ``what`` names the file in errors ("model file", "python data file"). ``on_forget``
    is called with the resolved path when an import fails, so that a registry can drop
    what the half-executed file registered.
    """
    file = Path(path)
    if not file.is_file():
        raise AlraoUserError(
            f"{what} not found: {path}",
            hint=f"check the path; a relative path starts from the current directory, {Path.cwd()}",
        )
    if file.suffix != ".py":
        raise AlraoUserError(f"{what} {path} is not a .py file", hint="give a Python file ending in .py")
    source = file.resolve()
    if source not in _MODULES:
        _MODULES[source] = _already_imported(source) or _execute(source, str(path), what, on_forget)
    return source, _MODULES[source]


def imported_digest(path: str | Path) -> str | None:
    """The SHA-256 of the text this process executed ``path`` from (None: not executed here).

    What a run directory records as the model file it trains: a file edited after it
    was imported differs from it, though the module in memory does not.
    """
    return _DIGESTS.get(Path(path).resolve())


def _already_imported(source: Path) -> ModuleType | None:
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if file and Path(file).name == source.name and Path(file).resolve() == source:
            return module
    return None


def module_name_for(source: Path) -> str:
    """The ``sys.modules`` name of an imported user file: readable stem plus a path digest."""
    stem = re.sub(r"\W", "_", source.stem)
    digest = hashlib.sha1(str(source).encode()).hexdigest()[:10]
    return f"_alrao_user_{stem}_{digest}"


def _execute(source: Path, shown: str, what: str, on_forget: Callable[[Path], None] | None) -> ModuleType:
    module_name = module_name_for(source)
    spec = importlib.util.spec_from_file_location(module_name, source)
    if spec is None or spec.loader is None:
        raise AlraoUserError(f"cannot import {shown} as Python", hint="give a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickle look classes up here
    folder = str(source.parent)
    sys.path.insert(0, folder)  # so the file can import its siblings

    def forget() -> None:
        sys.modules.pop(module_name, None)
        _DIGESTS.pop(source, None)
        if on_forget is not None:
            on_forget(source)

    try:
        _DIGESTS[source] = hashlib.sha256(source.read_bytes()).hexdigest()  # read just before the loader reads it
        spec.loader.exec_module(module)
    except AlraoUserError:
        forget()
        raise
    except SyntaxError as error:
        forget()
        where = shown if error.filename is None or Path(error.filename).resolve() == source else error.filename
        raise AlraoUserError(
            f"syntax error in {where}, line {error.lineno}: {error.msg}", hint=f"fix the {what}"
        ) from error  # kept, so that --debug shows the offending line
    except (Exception, SystemExit) as error:
        forget()
        raise AlraoUserError(
            f"importing {shown} failed{line_in(source, error)}: {type(error).__name__}: {error}",
            hint=f"fix the {what}; `python {shown}` shows the full traceback",
        ) from error
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    return module


def line_in(source: Path, error: BaseException) -> str:
    """`` at line N`` for the deepest line of ``source`` the error went through, if any."""
    lines = [frame.lineno for frame in traceback.extract_tb(error.__traceback__) if Path(frame.filename) == source]
    return f" at line {lines[-1]}" if lines else ""
