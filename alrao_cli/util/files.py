"""Files that are never half written, and names that are safe to use as file names.

A screen runs for hours and may be killed at any moment (Ctrl-C, SIGTERM, kill -9, a
full disk): every file a run directory holds is written to a temporary file in the same
folder (``os.replace`` is only atomic within one file system), flushed to disk, then
renamed over the old one, so readers and a resume see the old file or the new, never half.

A run directory is checked, never trusted: a writer given ``run_dir`` refuses a symbolic
link on its way (:func:`refuse_links`), and a write that fails there (a full disk, a
file-size limit, a folder made read-only) is one :class:`RunDirectoryError` line that
stops the study rather than failing the run in flight, which stays to be resumed.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from alrao_cli.errors import AlraoUserError

_UNSAFE = re.compile(r"[^A-Za-z0-9_.=-]+")
# Most file systems take 255 bytes a name; room is left for suffixes (".pt.tmp", "-2").
_MAX_NAME = 120


def _umask() -> int:
    """The process's umask, read without changing it for longer than this call."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


class RunDirectoryError(AlraoUserError):
    """The run directory cannot be written as it is: a link on the way, a full disk.

    The study's problem, not the model's: a run that meets it is not recorded as failed
    (its checkpoint and the saved results stay as they were); the study stops with this
    one line, and ``--resume`` continues once the directory is put right.
    """


# What "the disk is full" looks like: no space, a file-size limit (ulimit -f), a quota.
_DISK_FULL = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})


def refuse_links(path: Path, run_dir: Path) -> None:
    """Refuse ``path`` if it, or a folder between ``run_dir`` and it, is a symbolic link.

    Refused rather than followed: a rename replaces a link by a file (the link someone
    made is silently lost), an ``open()`` writes through it into whatever it points to
    (a lock or a traceback written over a file outside the run), and checkpoints written
    into a linked folder land, and are deleted, elsewhere. alrao makes no links in a run
    directory, so one found there was put by someone else, for a purpose alrao cannot
    know. ``run_dir`` itself may be a link (an ``--out`` on another disk): it was given.
    Checked just before each write; a link made in the instant between is not caught (a
    file's is then replaced by the rename, not written through; the lock is opened so
    that it never follows one). A FIFO, a socket or a device at ``path`` is refused too.
    """
    current = run_dir
    for part in path.relative_to(run_dir).parts:
        current = current / part
        if current.is_symlink():
            raise RunDirectoryError(
                f"{current} is a symbolic link: alrao does not write through links in a run directory",
                hint="put the file or folder itself in its place, or remove the link",
            )
    _refuse_special(path)


def _refuse_special(path: Path) -> None:
    """Refuse a FIFO, a socket or a device where alrao keeps a file: reading a FIFO waits
    for a writer that never comes (a resume would hang), and a rename replaces it unseen."""
    try:
        mode = path.lstat().st_mode
    except OSError:
        return  # not there (yet): nothing to refuse
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise RunDirectoryError(
            f"{path} is not a regular file (a FIFO, a socket or a device): alrao keeps only plain "
            "files and folders in a run directory",
            hint="remove it, or put the file itself in its place",
        )


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error`` means the disk (or the file-size limit, or the quota) is full."""
    found = os_error_behind(error)
    return found is not None and found.errno in _DISK_FULL


def os_error_behind(error: BaseException) -> OSError | None:
    """``error`` if it is an OSError, else the one it was raised from or while handling.

    ``torch.save`` reports a failed write as a RuntimeError of its C++ writer ("unexpected
    pos 704 vs 598"), raised while the OSError of the file's ``write()`` is handled: the
    errno is on the chain, not in the message.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def cannot_write(path: Path, run_dir: Path, error: BaseException) -> RunDirectoryError:
    """The one line for a write into ``run_dir`` that failed with ``error`` (an OSError on its chain)."""
    found = os_error_behind(error) or error
    why = getattr(found, "strerror", None) or str(found)
    todo = "free some space" if is_disk_full(error) else f"make {run_dir} writable"
    return RunDirectoryError(f"cannot write {path}: {why}", hint=f"{todo}, then continue with --resume {run_dir}")


@contextmanager
def atomic_file(path: Path, mode: str = "w", *, run_dir: Path | None = None) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on a clean exit it replaces ``path`` atomically.

    On any exception (an OSError of a full disk, Ctrl-C) the temporary file is removed
    and ``path`` is left as it was. The new file gets the permissions ``open()`` would
    give it (not tempfile's 0600), so run directories stay readable by a team.

    With ``run_dir`` (the run directory ``path`` lies in), links on the way are refused
    first, the folders between are created, and a failed write (an OSError, or torch's
    error wrapping one) becomes a :class:`RunDirectoryError`.
    """
    if run_dir is None:
        with _replacing(path, mode) as handle:
            yield handle
        return
    refuse_links(path, run_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _replacing(path, mode) as handle:
            yield handle
    except Exception as error:
        if os_error_behind(error) is None:
            raise  # not the disk's: a bug in what was being written
        raise cannot_write(path, run_dir, error) from error


@contextmanager
def _replacing(path: Path, mode: str) -> Iterator[IO]:
    """The temporary file and the rename: :func:`atomic_file` without the run directory's checks."""
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


def write_text_atomic(path: Path, text: str, *, run_dir: Path | None = None) -> None:
    """Write ``text`` to ``path`` through :func:`atomic_file`."""
    with atomic_file(path, run_dir=run_dir) as handle:
        handle.write(text)


def write_atomic_with(path: Path, write: Callable[[IO[bytes]], None], *, run_dir: Path | None = None) -> None:
    """Let ``write`` fill a binary file (``torch.save``, ``np.savez``, an XML tree) atomically."""
    with atomic_file(path, "wb", run_dir=run_dir) as handle:
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
