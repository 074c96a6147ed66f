"""Executors: who runs the runs of a plan.

A run is a plain :class:`~alrao_cli.train.RunSpec` in and a
:class:`~alrao_cli.results.RunResult` out, so an executor only has to carry specs to
a worker and results back. This one runs them in this process, in order; one spreading
them over GPUs or machines (a Ray executor, say) implements the same ``run`` method and
yields each result as soon as it is ready, in any order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from alrao_cli.results import RunResult
from alrao_cli.train import RunSpec

RunFunction = Callable[[RunSpec], RunResult]


class Executor(Protocol):
    def run(self, specs: Iterable[RunSpec], run_one: RunFunction) -> Iterator[RunResult]:
        """Run every spec with ``run_one`` (a picklable, module-level function) and yield each result."""


class SequentialExecutor:
    """Runs one spec after the other in this process: simple, and the default on one device."""

    def run(self, specs: Iterable[RunSpec], run_one: RunFunction) -> Iterator[RunResult]:
        for spec in specs:
            yield run_one(spec)
