"""``--isolate``: each run in a child process of its own, one after the other.

In this process, :mod:`alrao_cli.study.guard` undoes what model code can do to it, but
not everything: ``os._exit`` ends the process at once, a crash in native code
(a segfault) kills it, and a forward that hangs inside native code never gives control
back to a timer. Here each run (and each architecture's preflight, and each ARCH of
``alrao check``) runs in a child process, which may die or be killed while this one
records why and goes on:

- a child that ends without a result (``os._exit``, a signal, a crash) gives a failed
  result saying how it ended;
- a child still running at its run's time limit
  (:func:`~alrao_cli.study.time_limit.time_limit`) is killed and its run recorded as
  "timed out", wherever the child was stuck;
- a run directory that cannot be written (a full disk), or a bad item of the data read
  while training, stops the study as without ``--isolate``: the child says so rather
  than failing its run;
- Ctrl-C and SIGTERM stop this process as without ``--isolate`` (the child ignores
  Ctrl-C from the terminal and is killed by this process as it stops).

The children come from a ``multiprocessing`` *forkserver*: a fresh process that imports
torch and alrao's training code once (:data:`PRELOAD`) and then forks a child per run.
Forking is what makes a child cheap, and forking *that* process is safe: it never ran a
parallel region, whereas a child forked from this process after torch used OpenMP
threads may deadlock. Each child is told what to do through a pipe (the spec, the run
directory) and sends back progress events and then its result, all plain picklable
data (:mod:`alrao_cli.study.spec`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing import connection, get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alrao_cli.data.problems import DataProblem
from alrao_cli.errors import AlraoUserError
from alrao_cli.results.records import RunResult
from alrao_cli.study.attempt import PreflightFailure, execute_run, failed_result, preflight
from alrao_cli.study.spec import EventCallback, RunSpec, RunStarted
from alrao_cli.study.time_limit import time_limit, timed_out_reason
from alrao_cli.util.files import RunDirectoryError
from alrao_cli.util.reasons import one_line_reason

if TYPE_CHECKING:
    from alrao_cli.data.spec import DataSpec
    from alrao_cli.study.check import ArchCheck

# Imported once by the forkserver, so that each child starts with them loaded.
PRELOAD = ("torch", "alrao_cli.study.attempt", "alrao_cli.study.check")
JOIN_SECONDS = 5.0  # how long a child that sent its result may take to exit before it is killed


@dataclass(frozen=True, slots=True)
class _Ended:
    """How a child ended: with what its job returned, or without (``lost`` says why)."""

    value: Any = None
    lost: str | None = None  # one line: how the child ended without a result
    timed_out: bool = False  # killed at its time limit


class IsolatedExecutor:
    """Runs specs (and ``alrao check``'s architectures) one at a time, each in a child process.

    ``threads``: torch's intra-op threads in each child (``--threads-per-run``); None
    leaves torch's own count. ``grace``: ``--time-grace`` (None: the default).
    """

    def __init__(self, threads: int | None = None, grace: float | None = None) -> None:
        self.threads = threads
        self.grace = grace

    def run(self, specs: Sequence[RunSpec], run_dir: Path, on_event: EventCallback) -> Iterator[RunResult]:
        run_dir = Path(run_dir).absolute()  # a child's working directory need not stay this one's
        for spec in specs:
            on_event(RunStarted(spec.key))
            limit = time_limit(spec.budget, self.grace)
            ended = in_child(_run_job, (spec, run_dir, self.threads), on_event, limit)
            if ended.timed_out:
                yield failed_result(spec, timed_out_reason(spec.budget, limit), status="timed out")
            elif ended.lost is not None:
                yield failed_result(spec, ended.lost)
            else:
                yield ended.value

    def preflight(self, spec: RunSpec, run_dir: Path) -> PreflightFailure | None:
        """:func:`~alrao_cli.study.attempt.preflight` in a child: it runs the model too."""
        limit = time_limit(spec.budget, self.grace)
        ended = in_child(_preflight_job, (spec, Path(run_dir).absolute()), _no_events, limit)
        if ended.timed_out:
            reason = timed_out_reason(spec.budget, limit)
            return PreflightFailure(reason, AlraoUserError(reason), "timed out")
        reason = ended.lost or ended.value
        return None if reason is None else PreflightFailure(reason, AlraoUserError(reason))

    def check(
        self, archs: Sequence[str], data: DataSpec, steps: int, seed: int,
        model_kwargs: Mapping[str, Mapping[str, Any]], heads: Mapping[str, str],
    ) -> list[ArchCheck]:
        """``alrao check``'s items, one child per ARCH; the same list, in the same order, as in-process."""
        from alrao_cli.study.check import failed_at_build

        checks: list[ArchCheck] = []
        for arch in archs:
            started = time.perf_counter()
            job = (arch, data, steps, seed, dict(model_kwargs), dict(heads))
            ended = in_child(_check_job, job, _no_events, None, who="the check's process")
            if ended.lost is not None:
                checks.append(failed_at_build(arch, ended.lost, time.perf_counter() - started))
            else:
                checks.extend(ended.value)
        return checks

    def try_data(self, spec: DataSpec) -> str | None:
        """Load ``spec`` in a child and forget it: how the child ended if it ended without
        finishing (a ``python:`` factory that calls ``os._exit``), else None, whether the
        data loaded or failed (this process loads it next, and says why it failed)."""
        return in_child(_data_job, (spec,), _no_events, None, who="the data factory's process").lost


def in_child(
    job: Callable[..., Any], args: tuple[Any, ...], on_event: EventCallback, limit: float | None,
    who: str = "the run's process",
) -> _Ended:
    """Run ``job(send, *args)`` in a child process and wait for what it returns.

    ``send`` hands an event to ``on_event`` here, as it arrives. The child is killed at
    ``limit`` seconds (None: never), and whenever this function is left early (Ctrl-C,
    or ``on_event`` raising): no child outlives the call.
    """
    context = get_context("forkserver")
    context.set_forkserver_preload(list(PRELOAD))
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child_main, args=(sender, job, args), name=f"alrao-{job.__name__}")
    started = time.monotonic()
    child.start()
    sender.close()  # the child's end: once the child is gone, reading says so (EOFError)
    finished = False
    try:
        while True:
            left = None if limit is None else limit - (time.monotonic() - started)
            if left is not None and left <= 0:
                return _Ended(timed_out=True)
            if not connection.wait([receiver], timeout=left):
                continue
            try:
                kind, payload = receiver.recv()
            except EOFError:
                child.join()
                return _Ended(lost=_lost_reason(who, child.exitcode))
            if kind == "event":
                on_event(payload)
            elif kind == "stop":  # the run directory or the data failed, not the run: the study stops, as in-process
                finished = True
                error_type, message, hint = payload
                raise error_type(message, hint)
            else:
                finished = True
                return _Ended(value=payload) if kind == "result" else _Ended(lost=payload)
    finally:
        receiver.close()
        _end(child, wait=JOIN_SECONDS if finished else 0.0)


def _end(child: Any, wait: float) -> None:
    """Let ``child`` exit for ``wait`` seconds, then kill it; reap it either way."""
    child.join(wait)
    if child.exitcode is None:
        child.kill()
        child.join()
    child.close()


def _lost_reason(who: str, exitcode: int | None) -> str:
    """How a child ended without sending a result, in one line."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"{who} was killed by {name} without a result (a crash in native code, or out of memory?)"
    return f"{who} exited with code {exitcode} without a result (os._exit or a crash in native code)"


def _no_events(event: Any) -> None:
    """Preflights and checks send no progress."""


# -- in the child ---------------------------------------------------------------------------------------
def _child_main(sender: Any, job: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """A child's whole life: run the job, send what it returned, and leave at once.

    Ctrl-C is the parent's to handle (the terminal sends it to the whole process group):
    the parent kills this child when it stops. Standard output is the parent's (tables,
    ``--json``): whatever the model prints, at any level, goes to stderr. Leaving with
    ``os._exit`` does not wait for threads the model left running.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.stdout.flush()
    os.dup2(2, 1)
    code = 0
    try:
        message = ("result", job(lambda event: sender.send(("event", event)), *args))
    except (RunDirectoryError, DataProblem) as error:  # not the run's failure: sent as its type, message and hint
        message = ("stop", (type(error), error.message, error.hint))
    except BaseException as error:  # noqa: BLE001 - alrao's own code failed here: say so rather than die mute
        message = ("lost", f"in its own process: {one_line_reason(error)}")
    try:
        sender.send(message)
    except Exception as error:  # noqa: BLE001 - a result that does not pickle
        with contextlib.suppress(Exception):
            sender.send(("lost", f"its result could not be sent back: {one_line_reason(error)}"))
        code = 1
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def _prepare(threads: int | None) -> None:
    import torch

    from alrao_cli.study.torch_startup import skip_dynamo_import_for_optimizers

    skip_dynamo_import_for_optimizers()
    if threads is not None:
        torch.set_num_threads(threads)


def _run_job(send: EventCallback, spec: RunSpec, run_dir: Path, threads: int | None) -> RunResult:
    """One run; no time limit of its own, since the parent keeps the time."""
    _prepare(threads)
    return execute_run(spec, run_dir, send)


def _preflight_job(send: EventCallback, spec: RunSpec, run_dir: Path) -> str | None:
    """One preflight (no time limit of its own either); why it failed, since its exception may not pickle."""
    _prepare(None)
    failure = preflight(spec, run_dir)
    return None if failure is None else failure.reason


def _data_job(send: EventCallback, spec: DataSpec) -> None:
    """Load the data, whatever comes of it: only a process that ends here is news."""
    from alrao_cli.data.load import load_data

    with contextlib.suppress(BaseException):  # the parent loads it again and says why it failed
        load_data(spec)


def _check_job(
    send: EventCallback, arch: str, data: DataSpec, steps: int, seed: int,
    model_kwargs: dict[str, Mapping[str, Any]], heads: dict[str, str],
) -> list[ArchCheck]:
    """``alrao check``'s items for one ARCH."""
    from alrao_cli.data.load import cached_data
    from alrao_cli.study.check import run_checks

    _prepare(None)
    return run_checks([arch], cached_data(data), steps=steps, seed=seed, model_kwargs=model_kwargs, heads=heads)
