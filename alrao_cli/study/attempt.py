"""Run one spec in isolation: whatever goes wrong becomes a recorded failure.

A screen of twenty architectures must survive one broken model: an exception inside a
run ends that run with status "failed", a one-line reason and the history it had, its
traceback is kept in ``RUN_DIR/errors/``, and the study goes on. Model code that tries
to leave the process (``sys.exit``, its own ``KeyboardInterrupt``) fails its run the same
way, and what it changed in the process is put back (:mod:`alrao_cli.study.guard`); a run
past its time limit is stopped as "timed out" (:mod:`alrao_cli.study.time_limit`). Only
an interruption the user asked for (Ctrl-C, SIGTERM) escapes.
"""

from __future__ import annotations

import gc
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch

from alrao_cli.data.load import cached_data
from alrao_cli.data.problems import DataProblem
from alrao_cli.errors import AlraoUserError, is_out_of_memory
from alrao_cli.results.records import RunResult, Status
from alrao_cli.study.checkpoint import checkpoint_path
from alrao_cli.study.guard import ModelCodeEscaped, guard, trusted
from alrao_cli.study.methods import described
from alrao_cli.study.spec import ProgressCallback, RunSpec
from alrao_cli.study.time_limit import RunTimedOut, timed_out_reason, watchdog
from alrao_cli.study.train import PartialRun, TrainingFailed, build_learner, train_run
from alrao_cli.util.files import RunDirectoryError, safe_name, write_text_atomic
from alrao_cli.util.reasons import one_line_reason


def failed_result(
    spec: RunSpec, reason: str, partial: PartialRun | None = None, status: Status = "failed"
) -> RunResult:
    """The result of a run that did not finish: "failed", or "timed out" past its time limit."""
    return RunResult(
        key=spec.key, arch=spec.label, method=spec.method.name, lr=spec.method.lr, seed=spec.seed,
        status=status, reason=reason,
        params=partial.params if partial else None,
        seconds=partial.seconds if partial else 0.0,
        history=partial.history if partial else (),
        spec=spec.to_dict(),
        **described(spec.method),
    )


def execute_run(
    spec: RunSpec, run_dir: Path, on_progress: ProgressCallback | None = None, limit: float | None = None
) -> RunResult:
    """Train one run, resuming from its checkpoint if one exists; never raises but for Ctrl-C,
    a run directory that cannot be written (:class:`~alrao_cli.util.files.RunDirectoryError`)
    and a bad item of the data read while training (:class:`~alrao_cli.data.problems.DataProblem`).

    ``limit``: seconds after which the run is stopped, wherever it is
    (:func:`~alrao_cli.study.time_limit.time_limit`); None: none in this process. A
    module-level function of picklable arguments, so that an executor can ship it to
    another process or machine.
    """
    try:
        with guard(), watchdog(limit):
            data = cached_data(spec.data)
            return train_run(spec, data, checkpoint_path(run_dir, spec.key), trusted(on_progress), run_dir)
    except (RunDirectoryError, DataProblem):  # the run directory or the data failed, not the model: the study stops
        raise
    except RunTimedOut as timed_out:
        result = failed_result(spec, timed_out_reason(spec.budget, timed_out.limit), status="timed out")
    except TrainingFailed as failed:  # one broken model must not end the screen
        if isinstance(failed.__cause__, (RunDirectoryError, DataProblem)):  # a checkpoint not written, a bad item read
            raise failed.__cause__
        result = failed_result(spec, failure_reason(failed.__cause__, spec, run_dir), failed.partial)
    except Exception as error:  # noqa: BLE001
        result = failed_result(spec, failure_reason(error, spec, run_dir))
    # Out of the except block, the traceback and the tensors its frames held are gone.
    release_memory()
    return result


def release_memory() -> None:
    """Give back what a failed run held, so that the next run starts with the whole device."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if torch.backends.mps.is_available():
        torch.mps.empty_cache()


@dataclass(frozen=True, slots=True)
class PreflightFailure:
    reason: str  # one line, for the table
    error: BaseException  # kept for --debug, which shows where it came from
    status: Status = "failed"  # or "timed out": the check went past the run's time limit


def preflight(spec: RunSpec, run_dir: Path, limit: float | None = None) -> PreflightFailure | None:
    """Build, probe and wrap the run's architecture on the CPU; why it fails, or None.

    A screen checks every architecture this way before training any, so that a broken
    model is reported at once, and a study whose every model is broken is a usage error.
    ``limit`` bounds it as :func:`execute_run`'s bounds a run: a forward that never
    returns hangs here first.
    """
    try:
        with guard(), watchdog(limit):
            build_learner(spec, cached_data(spec.data), device="cpu", run_dir=run_dir)
    except RunTimedOut as timed_out:
        return PreflightFailure(timed_out_reason(spec.budget, timed_out.limit), timed_out, "timed out")
    except Exception as error:  # noqa: BLE001
        return PreflightFailure(failure_reason(error, spec, run_dir), error)
    return None


def is_expected_failure(error: BaseException) -> bool:
    """Whether ``error``'s one line says all there is: a user error, or a device out of memory.

    Anything else is a bug somewhere (in the user's model or in alrao), and whoever shows
    it adds where to look: a saved traceback (a screen), the line of model code (a check).
    """
    return isinstance(error, AlraoUserError) or is_out_of_memory(error)


def failure_line(error: BaseException, device: str = "cpu") -> str:
    """The one line a failure is shown with: in a screen's table and results, in ``alrao check``'s items.

    A user error's own message (with its hint); model code that tried to leave the process,
    what it did; running out of memory named as such, with what to try; anything else ``Type: first line of the message``. Runs of whitespace,
    newlines included, become one space, so that the line stays one line.
    """
    if isinstance(error, (AlraoUserError, ModelCodeEscaped)):
        text = str(error)
    elif is_out_of_memory(error):
        text = f"out of memory on {device} (try a smaller --batch-size or model)"
    else:
        text = one_line_reason(error)
    return " ".join(text.split()) or type(error).__name__


def failure_reason(error: BaseException, spec: RunSpec, run_dir: Path) -> str:
    """:func:`failure_line`; an unexpected error's traceback also goes to RUN_DIR/errors/, named there."""
    reason = failure_line(error, spec.device)
    if is_expected_failure(error):
        return reason
    log = (run_dir / "errors" / f"{safe_name(spec.key)}.txt").absolute()
    try:
        write_text_atomic(log, "".join(traceback.format_exception(error)), run_dir=run_dir.absolute())
    except RunDirectoryError:  # a link, a full disk: the failure is recorded all the same, without it
        return reason
    return f"{reason} (traceback: {log})"
