"""A live view of a study on the terminal: which run, which epoch, what loss, how long.

It listens to the study (:class:`~alrao_cli.study.driver.StudyObserver`) and draws with rich on
standard error, so standard output stays clean for ``--json`` and tables.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from alrao_cli.report.format import printable

if TYPE_CHECKING:  # annotations only: drawing progress needs none of the study's code
    from typing_extensions import Self

    from alrao_cli.results.records import RunResult
    from alrao_cli.study.plan import Plan
    from alrao_cli.study.spec import Progress as RunProgress
    from alrao_cli.study.spec import RunSpec

_STATUS_STYLE = {"ok": "green", "diverged": "yellow", "timed out": "red", "failed": "red"}


class RichObserver:
    """A bar for the whole study (runs done of all), and one per run in flight (its budget):
    one at a time in this process, several side by side with workers."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self.study_task = None
        self.run_tasks: dict[str, object] = {}  # run key -> its bar, while it trains
        self.started = False

    def __enter__(self) -> Self:
        return self  # the display starts with the study: errors before it print cleanly

    def __exit__(self, *exc) -> None:
        if self.started:  # stopping a display that never started would print a blank line
            self.progress.stop()

    def study_started(self, plan: Plan, done: int, resumed: bool) -> None:
        self.progress.start()
        self.started = True
        self.study_task = self.progress.add_task(
            "study", total=len(plan.runs), completed=done, detail=f"{done}/{len(plan.runs)} runs"
        )
        if plan.skipped_note:
            self.console.print(f"[yellow]note:[/] {escape(plan.skipped_note)}", highlight=False, soft_wrap=True)
        if resumed:
            self.console.print(f"resuming: {done} of {len(plan.runs)} runs already finished")

    def run_started(self, spec: RunSpec, index: int, total: int) -> None:
        label = escape(printable(f"[{index}/{total}] {spec.key.replace('|', ' ')}"))
        self.run_tasks[spec.key] = self.progress.add_task(f"[bold]{label}[/]", total=1000, detail="starting")

    def run_progress(self, progress: RunProgress) -> None:
        task = self.run_tasks.get(progress.key)
        if task is None:
            return  # an event of a run already finished (workers forward theirs late)
        if progress.checkpointed and progress.train_loss is None:
            self.progress.update(task, completed=int(progress.fraction * 1000))  # keep the last losses shown
            return
        parts = [f"epoch {progress.epoch + (0 if progress.val_loss is not None else 1)}"]
        if progress.train_loss is not None:
            parts.append(f"loss {progress.train_loss:.4f}")
        if progress.val_loss is not None:
            parts.append(f"val {progress.val_loss:.4f}")
        self.progress.update(task, completed=int(progress.fraction * 1000), detail="  ".join(parts))

    def run_finished(self, result: RunResult) -> None:
        task = self.run_tasks.pop(result.key, None)
        if task is not None:
            self.progress.remove_task(task)
        style = _STATUS_STYLE.get(result.status, "white")
        best = result.best_val_loss
        summary = f"val {best:.4f}" if best is not None and not math.isnan(best) else (result.reason or "")
        label = escape(printable(f"{result.key.replace('|', ' ')}  {summary}"))
        self.console.print(f"[{style}]{result.status:>8}[/] {label}  ({result.seconds:.1f}s)", highlight=False)
        self.progress.advance(self.study_task)
        task = next(t for t in self.progress.tasks if t.id == self.study_task)
        self.progress.update(self.study_task, detail=f"{int(task.completed)}/{int(task.total)} runs")
