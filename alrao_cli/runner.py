"""Run one spec in isolation: whatever goes wrong becomes a recorded failure.

A screen of twenty architectures must survive one broken model: an exception inside a
run ends that run with status "failed" and a one-line reason, its traceback is kept in
``RUN_DIR/errors/``, and the study goes on. Only an interruption (Ctrl-C) escapes.
"""

from __future__ import annotations

import functools
import re
import traceback
from pathlib import Path

import torch

from alrao_cli.data import DataSpec, LoadedData, load_data
from alrao_cli.errors import AlraoUserError
from alrao_cli.results import RunResult
from alrao_cli.train import ProgressCallback, RunSpec, build_learner, train_run


@functools.lru_cache(maxsize=2)
def cached_data(spec: DataSpec) -> LoadedData:
    """Datasets are loaded once per process and shared by all the runs that use them."""
    return load_data(spec)


def safe_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", key).strip("_")


def checkpoint_path(run_dir: Path, key: str) -> Path:
    return run_dir / "checkpoints" / f"{safe_name(key)}.pt"


def failed_result(spec: RunSpec, reason: str, seconds: float = 0.0) -> RunResult:
    return RunResult(
        key=spec.key, arch=spec.label, method=spec.method.name, lr=spec.method.lr, seed=spec.seed,
        status="failed", reason=reason, params=None, seconds=seconds, spec=spec.to_dict(),
    )


def execute_run(spec: RunSpec, run_dir: Path, on_progress: ProgressCallback | None = None) -> RunResult:
    """Train one run, resuming from its checkpoint if one exists; never raises but for Ctrl-C."""
    try:
        data = cached_data(spec.data)
        return train_run(spec, data, checkpoint_path(run_dir, spec.key), on_progress)
    except KeyboardInterrupt:
        raise
    except Exception as error:  # noqa: BLE001 - one broken model must not end the screen
        return failed_result(spec, failure_reason(error, spec, run_dir))


def preflight(spec: RunSpec, run_dir: Path) -> str | None:
    """Build, probe and wrap the run's architecture on the CPU; the reason it fails, or None.

    A screen checks every architecture this way before training any, so that a broken
    model is reported at once, and a study whose every model is broken is a usage error.
    """
    try:
        build_learner(spec, cached_data(spec.data), device="cpu")
    except KeyboardInterrupt:
        raise
    except Exception as error:  # noqa: BLE001
        return failure_reason(error, spec, run_dir)
    return None


def failure_reason(error: Exception, spec: RunSpec, run_dir: Path) -> str:
    """One line for the table; an unexpected error's traceback goes to RUN_DIR/errors/."""
    if isinstance(error, AlraoUserError):
        return str(error)
    if isinstance(error, (torch.cuda.OutOfMemoryError, MemoryError)):
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return f"out of memory on {spec.device} (try a smaller --batch-size or model)"
    log = run_dir / "errors" / f"{safe_name(spec.key)}.txt"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("".join(traceback.format_exception(error)))
    first_line = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {first_line} (traceback: {log.relative_to(run_dir)})"
