"""Files that are never half written, and names that are safe to use as file names.

A screen runs for hours and may be killed at any moment (Ctrl-C, SIGTERM, kill -9, a
full disk): every file a run directory holds is written to a temporary file in the same
folder (``os.replace`` is only atomic within one file system), flushed to disk, then
renamed over the old one, so readers and a resume see the old file or the new, never half.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

_UNSAFE = re.compile(r"[^A-Za-z0-9_.=-]+")
# Most file systems take 255 bytes a name; room is left for suffixes (".pt.tmp", "-2").
_MAX_NAME = 120


def _umask() -> int:
    """The process's umask, read without changing it for longer than this call."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_file(path: Path, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on a clean exit it replaces ``path`` atomically.

    On any exception (an OSError of a full disk, Ctrl-C) the temporary file is removed
    and ``path`` is left as it was. The new file gets the permissions ``open()`` would
    give it (not tempfile's 0600), so run directories stay readable by a team.
    """
    encoding = None if "b" in mode else "utf-8"
    handle = tempfile.NamedTemporaryFile(
        mode, encoding=encoding, dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    )
    temporary = Path(handle.name)
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through :func:`atomic_file`."""
    with atomic_file(path) as handle:
        handle.write(text)


def write_atomic_with(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Let ``write`` fill a binary file (``torch.save``, ``np.savez``, an XML tree) atomically."""
    with atomic_file(path, "wb") as handle:
        write(handle)


def safe_name(text: str) -> str:
    """A file name made from ``text`` (a run key, an ARCH): safe characters only, bounded length.

    Two different texts may clean up to the same characters (``a/b`` and ``a_b``); a long
    text is cut and given a digest of the whole, so that distinct long keys stay distinct.
    Callers that need distinct names for a set of texts use :func:`distinct_safe_names`.
    """
    cleaned = _UNSAFE.sub("_", text).strip("_.") or "unnamed"
    if len(cleaned) <= _MAX_NAME:
        return cleaned
    digest = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{cleaned[: _MAX_NAME - 13]}-{digest}"


def distinct_safe_names(texts: Iterator[str] | list[str]) -> dict[str, str]:
    """:func:`safe_name` of each text, with ``-2``, ``-3``... where two would collide."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for text in texts:
        base = safe_name(text)
        name, suffix = base, 1
        while name in taken:
            suffix += 1
            name = f"{base}-{suffix}"
        names[text] = name
        taken.add(name)
    return names
