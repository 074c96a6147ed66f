"""Executors: who runs the runs of a plan.

What crosses the executor boundary is picklable: the :class:`~alrao_cli.study.train.RunSpec`
records, the run directory (a path), and the module-level
:func:`~alrao_cli.study.attempt.execute_run`, which returns a
:class:`~alrao_cli.results.records.RunResult`. So an executor that spreads the runs over
processes, GPUs or machines (:mod:`alrao_cli.study.ray_executor`) ships
``execute_run(spec, run_dir)`` to a worker and yields each result as soon as it is ready,
in any order.

Progress travels the other way as plain events (:class:`RunStarted`, then
:class:`~alrao_cli.study.train.Progress`), handed to ``on_event``: an in-process executor
calls it directly; one with workers forwards the events through a queue and calls it in
the study's process.

:func:`open_executor` picks one from the :class:`~alrao_cli.config.schema.ExecutionConfig`:
this process, one run after the other, unless the user asked for workers, a cluster or
resources per run (only then is Ray imported and started), or for ``--isolate``: one run
after the other, each in a child process (:mod:`alrao_cli.study.isolated_executor`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from alrao_cli.config.schema import ExecutionConfig
from alrao_cli.data.datasets import LoadedData
from alrao_cli.data.load import cached_data, source_kind
from alrao_cli.errors import AlraoUserError
from alrao_cli.results.records import RunResult
from alrao_cli.study.attempt import PreflightFailure, execute_run, preflight
from alrao_cli.study.guard import usage_error_if_escaped
from alrao_cli.study.spec import EventCallback, RunSpec, RunStarted
from alrao_cli.study.time_limit import time_limit

if TYPE_CHECKING:
    from alrao_cli.data.spec import DataSpec
    from alrao_cli.study.check import ArchCheck
    from alrao_cli.study.isolated_executor import IsolatedExecutor
    from alrao_cli.study.ray_executor import RayExecutor

# How a study checks an architecture before training it (:func:`preflight_with`).
Preflight = Callable[[RunSpec, Path], PreflightFailure | None]


class Executor(Protocol):
    def run(self, specs: Sequence[RunSpec], run_dir: Path, on_event: EventCallback) -> Iterator[RunResult]:
        """Run every spec with :func:`~alrao_cli.study.attempt.execute_run` and yield each result.

        Send ``RunStarted(spec.key)`` when a run begins and its ``Progress`` events while
        it trains, to ``on_event``, from the study's process. Closing the iterator early
        (Ctrl-C, ``--fail-fast``) stops the runs still in flight; each keeps its last
        checkpoint.
        """


class SequentialExecutor:
    """Runs one spec after the other in this process: simple, and the default on one device.

    ``threads``: torch's intra-op threads while the runs train (``--threads-per-run``),
    given back afterwards; None leaves the process's count alone. Runs are bit-identical
    to a worker's only at the same count. ``grace``: ``--time-grace`` (None: the default).
    """

    def __init__(self, threads: int | None = None, grace: float | None = None) -> None:
        self.threads = threads
        self.grace = grace

    def run(self, specs: Sequence[RunSpec], run_dir: Path, on_event: EventCallback) -> Iterator[RunResult]:
        with self._threads():
            for spec in specs:
                on_event(RunStarted(spec.key))
                yield execute_run(spec, run_dir, on_event, time_limit(spec.budget, self.grace))

    def check(
        self, archs: Sequence[str], data: DataSpec, steps: int, seed: int,
        model_kwargs: Mapping[str, Mapping[str, Any]], heads: Mapping[str, str],
    ) -> list[ArchCheck]:
        """``alrao check``'s items for every ARCH, in order (:func:`~alrao_cli.study.check.run_checks`)."""
        from alrao_cli.study.check import run_checks

        return run_checks(list(archs), cached_data(data), steps=steps, seed=seed, model_kwargs=model_kwargs, heads=heads)

    def _threads(self):
        from alrao_cli.study.check import torch_threads

        return nullcontext() if self.threads is None else torch_threads(self.threads)


def require_executor(execution: ExecutionConfig, device: str) -> None:
    """Refuse at once what cannot run: Ray missing, GPUs asked of a machine without one,
    ``--isolate`` with Ray.

    Cheap (no Ray is started), so that a study says it before it creates anything.
    """
    _refuse_isolate_on_ray(execution)
    if execution.uses_ray:
        from alrao_cli.study.ray_executor import require_ray

        require_ray(execution, device)


def _refuse_isolate_on_ray(execution: ExecutionConfig) -> None:
    """Ray already gives each run a process of its own: asking for both is a mistake to say, not to guess at."""
    if execution.isolate and execution.uses_ray:
        raise AlraoUserError(
            f"--isolate runs each run in a child process of this one; {execution.asked_for_ray} runs them on Ray",
            hint="drop --isolate: a Ray worker is a process of its own already (a run whose worker dies is retried, "
            "then failed)",
        )


def preflight_with(execution: ExecutionConfig) -> Preflight:
    """How a study checks each architecture before training: where its runs would execute.

    With ``--isolate`` the preflight runs the model in a child process too: a model that
    calls ``os._exit`` or hangs in native code does it there first. Elsewhere, in this
    process, bounded by the run's time limit.
    """
    if execution.isolate:
        from alrao_cli.study.isolated_executor import IsolatedExecutor

        return IsolatedExecutor(execution.threads_per_run, execution.time_grace).preflight

    def in_process(spec: RunSpec, run_dir: Path) -> PreflightFailure | None:
        return preflight(spec, run_dir, time_limit(spec.budget, execution.time_grace))

    return in_process


def load_data_with(execution: ExecutionConfig, spec: DataSpec) -> LoadedData:
    """The command's data, loaded once in this process: a missing dataset, or a ``python:``
    factory that fails (even by ``sys.exit()``), is a usage error said before anything runs.

    With ``--isolate`` a ``python:`` factory first runs in a child process: one that ends
    its process (``os._exit``, a crash in native code) says so in one line there, instead
    of ending the command with no message here.
    """
    if execution.isolate and source_kind(spec.source) == "python":
        from alrao_cli.study.isolated_executor import IsolatedExecutor

        lost = IsolatedExecutor(execution.threads_per_run, execution.time_grace).try_data(spec)
        if lost is not None:
            raise AlraoUserError(f"loading the data: {lost}", hint="fix the data factory")
    with usage_error_if_escaped("the data factory", "loading the data", "fix the data factory"):
        return cached_data(spec)


@contextmanager
def open_executor(
    execution: ExecutionConfig | None = None, device: str = "auto"
) -> Iterator[SequentialExecutor | IsolatedExecutor | RayExecutor]:
    """The executor ``execution`` asks for, ready, and released at the end of the block.

    ``device`` is the study's (``--device``): a run given GPUs by Ray trains on CUDA.
    """
    execution = execution or ExecutionConfig()
    _refuse_isolate_on_ray(execution)
    if execution.isolate:
        from alrao_cli.study.isolated_executor import IsolatedExecutor

        yield IsolatedExecutor(execution.threads_per_run, execution.time_grace)
        return
    if not execution.uses_ray:
        yield SequentialExecutor(execution.threads_per_run, execution.time_grace)
        return
    from alrao_cli.study.ray_executor import ray_executor

    with ray_executor(execution, device) as executor:
        yield executor
