"""The run directory: created, locked, and checked before it is trusted.

A screen can run overnight; in the morning its directory must hold what it computed and
nothing else. So a directory is used by one command at a time (an advisory lock the
kernel drops when its process dies, so a crashed run never blocks ``--resume``), its
``config.yaml`` carries a digest of itself (a config edited or truncated since the run
began is refused, not silently mixed into one ranking), and the model files the study
trains are fingerprinted as it imports them (a model file changed since is refused on
resume, or with ``--force`` its runs start again from scratch; one changed while the
study runs stops it). No file of it is read or written through
a symbolic link (:func:`~alrao_cli.util.files.refuse_links` says why), and its JSON is
read strictly (:mod:`alrao_cli.util.strict_json`): an edited file is refused in one line.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TextIO

from alrao_cli.config.schema import StudyConfig, build_config
from alrao_cli.config.yaml_io import dump_config_yaml, load_config_file
from alrao_cli.errors import AlraoUserError
from alrao_cli.results.records import RESULTS_CSV, RESULTS_JSON, StudyResult, load_study
from alrao_cli.study.checkpoint import CHECKPOINTS
from alrao_cli.util.files import cannot_write, refuse_links, write_text_atomic
from alrao_cli.util.pyfile import imported_digest
from alrao_cli.util.strict_json import loads_strict

CONFIG_FILE = "config.yaml"
SOURCES_FILE = "sources.json"  # digests of the model files, by path, as the study began
LOCK_FILE = ".lock"
_DIGEST_MARK = "# digest: "


def default_run_dir(kind: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    candidate = Path("runs") / f"{stamp}-{kind}"
    suffix = 1
    while candidate.exists():
        suffix += 1
        candidate = Path("runs") / f"{stamp}-{kind}-{suffix}"
    return candidate


def prepare_run_dir(path: Path) -> Path:
    """Create the run directory, or say clearly why it cannot be written."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):  # a name of its own: never a link someone left
            pass
    except OSError as error:
        raise AlraoUserError(
            f"cannot write the output directory {path}: {error.strerror or error}",
            hint="choose another folder with --out",
        ) from None
    return path


def refuse_existing_run(path: Path) -> None:
    """``--out`` on an earlier run would mix its checkpoints and results with this one's."""
    if (path / CONFIG_FILE).exists() or (path / RESULTS_JSON).exists():
        raise AlraoUserError(
            f"--out {path} is already a run",
            hint=f"use --resume {path} to continue it, or another --out",
        )


@contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Hold the run directory for this process; a second command on it is refused at once.

    ``flock`` locks belong to the open file, so the kernel releases them when the process
    ends, however it ends: a lock left by a killed run never blocks a later ``--resume``.
    The lock file stays (deleting it would race with a process opening it). It is opened
    without following a link (one would have the pid written over whatever it points to).
    """
    path = run_dir / LOCK_FILE
    refuse_links(path, run_dir)
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    except OSError as error:  # a link made since the check (ELOOP), a full or read-only disk
        raise cannot_write(path, run_dir, error) from None
    handle: TextIO = os.fdopen(descriptor, "r+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise AlraoUserError(
                f"{run_dir} is in use by {holder}",
                hint="wait for it to finish, or stop it (Ctrl-C) and run --resume",
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"alrao (pid {os.getpid()})\n")
        handle.flush()
        yield
    finally:
        handle.close()  # releases the lock


def remove_if_unused(run_dir: Path) -> None:
    """Remove a run directory this command created but never used (a usage error before training)."""
    leftovers = [entry for entry in run_dir.iterdir() if entry.name != LOCK_FILE]
    if not leftovers:
        (run_dir / LOCK_FILE).unlink(missing_ok=True)
        run_dir.rmdir()


# -- config.yaml ------------------------------------------------------------------------
def write_config(run_dir: Path, config: StudyConfig) -> None:
    """``config.yaml`` atomically, with a digest of its own text so an edit can be told."""
    text = dump_config_yaml(replace(config, out=None))  # re-running the file never overwrites this run
    write_text_atomic(run_dir / CONFIG_FILE, f"{_DIGEST_MARK}{_digest(text)}\n{text}", run_dir=run_dir)


def read_config(run_dir: Path) -> StudyConfig:
    """The saved config, refused if it was edited or truncated since the run began.

    Files written before configs carried a digest are read as they are.
    """
    path = run_dir / CONFIG_FILE
    text = path.read_text(encoding="utf-8", errors="replace")
    first, _, rest = text.partition("\n")
    if first.startswith(_DIGEST_MARK) and first[len(_DIGEST_MARK):].strip() != _digest(rest):
        raise AlraoUserError(
            f"--resume {run_dir}: {CONFIG_FILE} was changed since the run began (edited or truncated)",
            hint="put it back as it was to continue this run, or start a new one with --config",
        )
    return build_config(load_config_file(path), {})


def refuse_not_a_run(run_dir: Path, kind: str) -> None:
    """``--resume RUN_DIR`` names an earlier run directory: not a missing path, not a file,
    not a folder without the ``config.yaml`` a study writes first.

    Checked before the run directory is prepared, so that a missing or mistyped folder
    is said to be missing (not created and then found empty), and a file is said to be
    a file (not a folder that cannot be written).
    """
    hint = (
        f"pass the folder an earlier `alrao {kind}` wrote its results in: "
        f"runs/<timestamp>-{kind} by default, or the --out it was given"
    )
    if not run_dir.exists():
        raise AlraoUserError(f"--resume {run_dir}: no such run directory", hint=hint)
    if not run_dir.is_dir():
        raise AlraoUserError(f"--resume {run_dir}: a file, not a run directory", hint=hint)
    if not (run_dir / CONFIG_FILE).is_file():
        raise AlraoUserError(f"--resume {run_dir}: not a run directory (no {CONFIG_FILE} in it)", hint=hint)


def load_resumable(run_dir: Path, kind: str) -> tuple[StudyConfig, StudyResult | None]:
    """The saved config and results of an earlier run directory, checked to be one.

    A link among what a resume reads and rewrites is refused now, before anything trains.
    """
    refuse_not_a_run(run_dir, kind)
    _refuse_links_in(run_dir)
    config = read_config(run_dir)
    study = load_study(run_dir) if (run_dir / RESULTS_JSON).exists() else None
    if study is not None and study.kind != kind:
        raise AlraoUserError(
            f"--resume {run_dir}: that run is an `alrao {study.kind}`, not an `alrao {kind}`",
            hint=f"resume it with `alrao {study.kind} --resume {run_dir}`",
        )
    return config, study


def _refuse_links_in(run_dir: Path) -> None:
    """What a resume reads and rewrites: the files of the study and every checkpoint."""
    for name in (CONFIG_FILE, RESULTS_JSON, RESULTS_CSV, SOURCES_FILE, CHECKPOINTS):
        refuse_links(run_dir / name, run_dir)
    checkpoints = run_dir / CHECKPOINTS
    for entry in checkpoints.iterdir() if checkpoints.is_dir() else ():
        refuse_links(entry, run_dir)


# -- model files ------------------------------------------------------------------------
def source_files(archs: Iterable[str]) -> list[str]:
    """The model files canonical ARCHs are read from (``/abs/file.py:Name`` -> ``/abs/file.py``)."""
    files = []
    for arch in archs:
        path, colon, _ = arch.rpartition(":")
        file = path if colon and path.endswith(".py") else arch if arch.endswith(".py") else None
        if file is not None and file not in files:
            files.append(file)
    return files


def record_sources(run_dir: Path, files: Iterable[str]) -> None:
    """The digest of each model file as this process imported it (planning did), else as it is now."""
    digests = {file: imported_digest(file) or _file_digest(file) for file in files}
    write_text_atomic(run_dir / SOURCES_FILE, json.dumps(digests, indent=2, sort_keys=True) + "\n", run_dir=run_dir)


def changed_sources(run_dir: Path) -> list[str]:
    """The model files whose content differs from when the study began (none recorded: none).

    A file that is gone is not "changed": planning the resume reports it as a model that
    no longer builds. A record that cannot be read is refused: read as "none", it would
    let every model file change unseen.
    """
    path = run_dir / SOURCES_FILE
    if not path.exists():
        return []  # a study begun before model files were fingerprinted
    try:
        recorded = loads_strict(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise AlraoUserError(f"--resume {run_dir}: cannot read {SOURCES_FILE}: {error.strerror or error}") from None
    except ValueError as error:  # not UTF-8, not JSON, a key given twice, nested past any real file
        raise _corrupt_sources(run_dir, str(error)) from None
    if not isinstance(recorded, dict) or any(not isinstance(digest, (str, type(None))) for digest in recorded.values()):
        raise _corrupt_sources(run_dir, "not a mapping of model files to digests")
    now = {file: _file_digest(file) for file in recorded}
    return [file for file, digest in recorded.items() if now[file] is not None and now[file] != digest]


def _corrupt_sources(run_dir: Path, why: str) -> AlraoUserError:
    return AlraoUserError(
        f"--resume {run_dir}: {SOURCES_FILE} is corrupt: {why}",
        hint="it was edited since the run began; put it back as it was, or start a new run",
    )


def _file_digest(file: str) -> str | None:
    try:
        return hashlib.sha256(Path(file).read_bytes()).hexdigest()
    except OSError:
        return None  # a missing file is reported when the plan tries to import it


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
