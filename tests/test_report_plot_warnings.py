"""The end of a study: the ranking first, then the plots; a plot that cannot be drawn is a warning.

A full disk while drawing must not hide a finished study's ranking nor turn its exit code
into a usage error (2): the results are saved, the table is printed, each plot that fails
is one yellow ``warning:`` line on standard error, and the others are still drawn.
"""

from __future__ import annotations

import errno
import io
import json
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from alrao_cli.cli.app import app
from alrao_cli.report import console, plots
from alrao_cli.results.records import EpochRecord, RunResult, StudyResult
from alrao_cli.study.driver import StudyOutcome

RANKING_TITLE = "Ranked by best validation loss"
FULL_DISK = OSError(errno.ENOSPC, "No space left on device")


def full_disk(figure, path: Path) -> None:
    raise FULL_DISK


def alrao_run(arch: str, losses: tuple[float, ...], status: str = "ok", reason: str | None = None) -> RunResult:
    history = tuple(
        EpochRecord(epoch=epoch, step=epoch, train_loss=loss, train_acc=None, val_loss=loss, val_acc=0.5,
                    seconds=1.0, posterior=(0.3, 0.7))
        for epoch, loss in enumerate(losses, start=1)
    )
    return RunResult(key=f"{arch}|alrao|seed=0", arch=arch, method="alrao", lr=None, seed=0, status=status,
                     reason=reason, params=10, seconds=1.0, history=history, copy_lrs=(0.01, 0.1))


def finished(tmp_path: Path, *runs: RunResult) -> StudyOutcome:
    study = StudyResult(kind="screen", config={"plots": True}, runs=runs, started="2026-01-01T00:00:00")
    return StudyOutcome(run_dir=tmp_path, study=study)


def consoles() -> tuple[Console, Console]:
    return Console(file=io.StringIO(), width=200), Console(file=io.StringIO(), width=60)


def test_a_full_disk_while_plotting_keeps_the_ranking_and_the_exit_code(tmp_path, monkeypatch) -> None:
    """Through the real command: the study is saved and ranked, the plots are warnings, exit 0."""
    monkeypatch.setattr(plots, "save_figure", full_disk)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["screen", "mlp", "--subset", "256", "--epochs", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert RANKING_TITLE in result.stdout and "mlp" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: could not draw the plot {out / name}: No space left on device"
        for name in ("curves-mlp.png", "posterior-mlp.png")
    ]
    assert "Traceback" not in result.output and "error:" not in result.stderr
    assert f"results in {out}" in result.stderr
    saved = json.loads((out / "results.json").read_text())
    assert [run["arch"] for run in saved["runs"]] == ["mlp"]
    assert not list(out.glob("*.png"))


def test_the_ranking_is_printed_before_any_plot_is_drawn(tmp_path, monkeypatch) -> None:
    out, err = consoles()
    printed_when_saving = []

    def record(figure, path: Path) -> None:
        printed_when_saving.append(out.file.getvalue())

    monkeypatch.setattr(plots, "save_figure", record)
    outcome = finished(tmp_path, alrao_run("mlp", (0.5, 0.4)))
    console.print_outcome(outcome, out=out, err=err, json_out=False, quiet=False)
    assert len(printed_when_saving) == 2  # curves and posterior
    assert all(RANKING_TITLE in text for text in printed_when_saving)


def test_a_failing_plot_is_one_warning_and_the_others_are_drawn(tmp_path, monkeypatch) -> None:
    """A matplotlib error drawing one figure costs that figure: the study's exit code stands."""
    def broken_posterior(arch: str, run: RunResult):
        raise ValueError("Image size of 100000x400 pixels is too large.\nIt must be less than 2^16.")

    monkeypatch.setattr(plots, "_posterior_figure", broken_posterior)
    out, err = consoles()
    outcome = finished(tmp_path, alrao_run("mlp", (0.5, 0.4)), alrao_run("vgg", (1.0,), "failed", "boom"))
    console.print_outcome(outcome, out=out, err=err, json_out=False, quiet=False)  # returns: the caller exits
    assert outcome.exit_code == 1  # vgg failed: the study's own code, not 2
    assert sorted(path.name for path in tmp_path.glob("*.png")) == ["curves-mlp.png", "curves-vgg.png"]
    lines = err.file.getvalue().splitlines()
    assert [line for line in lines if line.startswith("warning:")] == [
        f"warning: could not draw the plot {tmp_path / name}: ValueError: Image size of 100000x400 pixels is too large."
        for name in ("posterior-mlp.png", "posterior-vgg.png")
    ]
    assert lines[-1] == f"results in {tmp_path}, 1 failed or diverged"  # long lines are not wrapped


def test_warnings_reach_stderr_with_quiet_and_json_leaves_stdout_clean(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(plots, "save_figure", full_disk)
    out, err = consoles()
    console.print_outcome(finished(tmp_path, alrao_run("mlp", (0.5, 0.4))), out=out, err=err, json_out=True, quiet=True)
    assert json.loads(out.file.getvalue())["ranking"][0]["arch"] == "mlp"
    assert err.file.getvalue().count("warning: could not draw the plot") == 2


def test_an_interrupted_study_draws_no_plot(tmp_path, monkeypatch) -> None:
    drawn = []
    monkeypatch.setattr(plots, "save_figure", lambda figure, path: drawn.append(path))
    outcome = StudyOutcome(tmp_path, finished(tmp_path, alrao_run("mlp", (0.5,))).study, interrupted=True)
    assert outcome.exit_code == 130
    out, err = consoles()
    console.print_outcome(outcome, out=out, err=err, json_out=False, quiet=False)
    assert drawn == [] and RANKING_TITLE in out.file.getvalue()


def test_no_plots_draws_nothing(tmp_path, monkeypatch) -> None:
    drawn = []
    monkeypatch.setattr(plots, "save_figure", lambda figure, path: drawn.append(path))
    study = StudyResult(kind="screen", config={"plots": False}, runs=(alrao_run("mlp", (0.5,)),), started="x")
    out, err = consoles()
    console.print_outcome(StudyOutcome(tmp_path, study), out=out, err=err, json_out=False, quiet=True)
    assert drawn == [] and err.file.getvalue() == ""


def test_report_plots_into_an_unwritable_folder_is_still_a_user_error(tmp_path, monkeypatch) -> None:
    """``alrao report --plots`` asked for the plots alone: a folder that cannot take them is exit 2."""
    from alrao_cli.results.records import save_study

    save_study(tmp_path, finished(tmp_path, alrao_run("mlp", (0.5, 0.4))).study)
    monkeypatch.setattr(plots, "save_figure", full_disk)
    result = CliRunner().invoke(app, ["report", str(tmp_path), "--plots"])
    assert result.exit_code == 2
    assert RANKING_TITLE in result.stdout  # the table came first
    assert f"cannot write the plot {tmp_path / 'curves-mlp.png'}: No space left on device" in result.stderr
