"""Executors: who runs the runs of a plan.

What crosses the executor boundary is picklable: the :class:`~alrao_cli.study.train.RunSpec`
records, the run directory (a path), and the module-level
:func:`~alrao_cli.study.attempt.execute_run`, which returns a
:class:`~alrao_cli.results.records.RunResult`. So an executor that spreads the runs over
processes, GPUs or machines (a Ray executor, say) ships ``execute_run(spec, run_dir)``
to a worker and yields each result as soon as it is ready, in any order.

Progress travels the other way as plain events (:class:`RunStarted`, then
:class:`~alrao_cli.study.train.Progress`), handed to ``on_event``: an in-process executor
calls it directly; one with workers forwards the events through a queue and calls it in
the study's process.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

from alrao_cli.results.records import RunResult
from alrao_cli.study.spec import EventCallback, RunStarted
from alrao_cli.study.attempt import execute_run
from alrao_cli.study.spec import RunSpec


class Executor(Protocol):
    def run(self, specs: Sequence[RunSpec], run_dir: Path, on_event: EventCallback) -> Iterator[RunResult]:
        """Run every spec with :func:`~alrao_cli.study.attempt.execute_run` and yield each result.

        Send ``RunStarted(spec.key)`` when a run begins and its ``Progress`` events while
        it trains, to ``on_event``, from the study's process.
        """


class SequentialExecutor:
    """Runs one spec after the other in this process: simple, and the default on one device."""

    def run(self, specs: Sequence[RunSpec], run_dir: Path, on_event: EventCallback) -> Iterator[RunResult]:
        for spec in specs:
            on_event(RunStarted(spec.key))
            yield execute_run(spec, run_dir, on_event)
