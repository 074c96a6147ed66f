"""Executors: who runs the runs of a plan.

What crosses the executor boundary is picklable: the :class:`~alrao_cli.train.RunSpec`
records, the run directory (a path), and the module-level
:func:`~alrao_cli.runner.execute_run`, which returns a
:class:`~alrao_cli.results.RunResult`. So an executor that spreads the runs over
processes, GPUs or machines (a Ray executor, say) ships ``execute_run(spec, run_dir)``
to a worker and yields each result as soon as it is ready, in any order.

Progress travels the other way as plain events (:class:`RunStarted`, then
:class:`~alrao_cli.train.Progress`), handed to ``on_event``: an in-process executor
calls it directly; one with workers forwards the events through a queue and calls it in
the study's process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from alrao_cli.results import RunResult
from alrao_cli.runner import execute_run
from alrao_cli.train import Progress, RunSpec


@dataclass(frozen=True, slots=True)
class RunStarted:
    """A worker began the run ``key``."""

    key: str


RunEvent = RunStarted | Progress
EventCallback = Callable[[RunEvent], None]


class Executor(Protocol):
    def run(self, specs: Sequence[RunSpec], run_dir: Path, on_event: EventCallback) -> Iterator[RunResult]:
        """Run every spec with :func:`~alrao_cli.runner.execute_run` and yield each result.

        Send ``RunStarted(spec.key)`` when a run begins and its ``Progress`` events while
        it trains, to ``on_event``, from the study's process.
        """


class SequentialExecutor:
    """Runs one spec after the other in this process: simple, and the default on one device."""

    def run(self, specs: Sequence[RunSpec], run_dir: Path, on_event: EventCallback) -> Iterator[RunResult]:
        for spec in specs:
            on_event(RunStarted(spec.key))
            yield execute_run(spec, run_dir, on_event)
