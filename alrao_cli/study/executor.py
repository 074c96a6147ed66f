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
resources per run; only then is Ray imported and started.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from alrao_cli.config.schema import ExecutionConfig
from alrao_cli.data.load import cached_data
from alrao_cli.results.records import RunResult
from alrao_cli.study.attempt import execute_run
from alrao_cli.study.spec import EventCallback, RunSpec, RunStarted

if TYPE_CHECKING:
    from alrao_cli.data.spec import DataSpec
    from alrao_cli.study.check import ArchCheck
    from alrao_cli.study.ray_executor import RayExecutor


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
    to a worker's only at the same count.
    """

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads

    def run(self, specs: Sequence[RunSpec], run_dir: Path, on_event: EventCallback) -> Iterator[RunResult]:
        with self._threads():
            for spec in specs:
                on_event(RunStarted(spec.key))
                yield execute_run(spec, run_dir, on_event)

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
    """Refuse at once what cannot run: Ray missing, GPUs asked of a machine without one.

    Cheap (no Ray is started), so that a study says it before it creates anything.
    """
    if execution.uses_ray:
        from alrao_cli.study.ray_executor import require_ray

        require_ray(execution, device)


@contextmanager
def open_executor(
    execution: ExecutionConfig | None = None, device: str = "auto"
) -> Iterator[SequentialExecutor | RayExecutor]:
    """The executor ``execution`` asks for, ready, and released at the end of the block.

    ``device`` is the study's (``--device``): a run given GPUs by Ray trains on CUDA.
    """
    execution = execution or ExecutionConfig()
    if not execution.uses_ray:
        yield SequentialExecutor(execution.threads_per_run)
        return
    from alrao_cli.study.ray_executor import ray_executor

    with ray_executor(execution, device) as executor:
        yield executor
