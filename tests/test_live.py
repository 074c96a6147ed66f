"""The live view keeps one bar per run in flight, so runs side by side each show their own progress."""

from __future__ import annotations

import io

from rich.console import Console

from alrao_cli.report.live import RichObserver
from alrao_cli.results.records import RunResult
from alrao_cli.study.plan import Plan
from alrao_cli.study.spec import Progress


class Spec:
    def __init__(self, key: str) -> None:
        self.key = key


def test_each_run_in_flight_has_its_own_bar_until_it_finishes():
    observer = RichObserver(Console(file=io.StringIO(), force_terminal=False))
    with observer:
        observer.study_started(Plan(runs=("a", "b"), unresolved=(), seeds=(0,), skipped=(), input_shape=None), 0, False)
        observer.run_started(Spec("mlp|alrao|seed=0"), 1, 2)
        observer.run_started(Spec("cnn1d|alrao|seed=0"), 2, 2)
        observer.run_progress(Progress("mlp|alrao|seed=0", 1, 10, 0.5, 0.9, 1.0))
        observer.run_progress(Progress("cnn1d|alrao|seed=0", 0, 3, 0.1, 1.5, None))
        bars = {task.description: task for task in observer.progress.tasks}
        mlp = next(task for name, task in bars.items() if "mlp" in name)
        cnn = next(task for name, task in bars.items() if "cnn1d" in name)
        assert (mlp.completed, cnn.completed) == (500, 100)
        assert "val 1.0000" in mlp.fields["detail"] and "loss 1.5000" in cnn.fields["detail"]
        observer.run_finished(RunResult(key="mlp|alrao|seed=0", arch="mlp", method="alrao", lr=None, seed=0,
                                        status="ok", reason=None, params=1, seconds=1.0))
        observer.run_progress(Progress("mlp|alrao|seed=0", 1, 11, 0.6, 0.8, None))  # late: ignored
        assert [task.description for task in observer.progress.tasks if "mlp" in task.description] == []
        assert any("cnn1d" in task.description for task in observer.progress.tasks)
