"""`alrao report RUN_DIR` reads results alone: no torch, and no method registry.

A report runs in a fresh interpreter, so that nothing an earlier test imported (torch, the
training methods) can hide an import the report path makes. The saved runs include a
method no process has registered: it must be shown by the label it saved.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from alrao_cli.results.records import EpochRecord, RunResult, StudyResult, save_study

COPY_LRS = (1e-3, 1e-2, 1e-1)

# The code path of `alrao report`: load the saved study, print it in every format.
REPORT_EVERY_FORMAT = """
import io, json, sys
from pathlib import Path

from rich.console import Console

from alrao_cli.report import console
from alrao_cli.results.records import load_study

rendered = {}
for folder in sys.argv[1:]:
    run_dir = Path(folder)
    study = load_study(run_dir)
    for output_format in console.FORMATS:
        out = Console(file=io.StringIO(), width=200)
        console.print_report(study, run_dir, output_format, out)
        rendered[f"{study.kind} {output_format}"] = out.file.getvalue()
loaded = sorted(name for name in sys.modules if name == "torch" or name.startswith(("torch.", "alrao_cli.study")))
print(json.dumps({"rendered": rendered, "loaded": loaded}))
"""


def run(arch: str, method: str, lr: float | None, losses: tuple[float, ...], *, tuned: bool, label: str) -> RunResult:
    alrao = method == "alrao"
    history = tuple(
        EpochRecord(
            epoch=epoch, step=10 * epoch, train_loss=loss + 0.1, train_acc=None, val_loss=loss, val_acc=0.5,
            seconds=float(epoch), posterior=(0.2, 0.5, 0.3) if alrao else None,
        )
        for epoch, loss in enumerate(losses, start=1)
    )
    rate = "" if lr is None else f"|lr={lr:g}"
    return RunResult(
        key=f"{arch}|{method}{rate}|seed=0", arch=arch, method=method, lr=lr, seed=0, status="ok", reason=None,
        params=1234, seconds=1.5, history=history, copy_lrs=COPY_LRS if alrao else None,
        method_label=label, tuned_over_grid=tuned,
    )


def saved_study(folder: Path, kind: str) -> Path:
    """Alrao, the SGD grid, and a grid method named "mystery" that no process registers."""
    runs = []
    for arch, shift in [("mlp", 0.0), ("cnn1d", 0.1)]:
        runs += [
            run(arch, "alrao", None, (0.6 + shift, 0.4 + shift), tuned=False, label="Alrao"),
            run(arch, "sgd", 0.01, (0.7, 0.5 - shift), tuned=True, label="SGD"),
            run(arch, "sgd", 0.1, (0.65, 0.45 - shift), tuned=True, label="SGD"),
            run(arch, "mystery", 0.01, (0.5 + shift, 0.35 + shift), tuned=True, label="Mystery"),
            run(arch, "mystery", 0.1, (0.55 + shift, 0.38 + shift), tuned=True, label="Mystery"),
        ]
    folder.mkdir()
    save_study(folder, StudyResult(kind=kind, config={}, runs=tuple(runs), started="2026-01-01T00:00:00"))
    return folder


@pytest.fixture(scope="module")
def fresh_report(tmp_path_factory) -> dict:
    """What a fresh interpreter prints for a saved screen and a saved compare, and what it imported."""
    root = tmp_path_factory.mktemp("saved")
    folders = {kind: str(saved_study(root / kind, kind)) for kind in ("screen", "compare")}
    done = subprocess.run(
        [sys.executable, "-c", REPORT_EVERY_FORMAT, *folders.values()],
        check=False, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return {**json.loads(done.stdout), "folders": folders}


def test_the_report_path_imports_neither_torch_nor_the_training_code(fresh_report) -> None:
    assert fresh_report["loaded"] == []
    assert sorted(fresh_report["rendered"]) == [
        f"{kind} {output_format}" for kind in ("compare", "screen") for output_format in ("csv", "json", "markdown", "table")
    ]


def test_an_unregistered_method_is_shown_by_its_saved_label(fresh_report) -> None:
    rendered = fresh_report["rendered"]
    assert "best Mystery (lr)" in rendered["screen table"]
    assert "| best Mystery (lr) |" in rendered["screen markdown"].splitlines()[0]
    assert "best_mystery_lr" in rendered["screen csv"].splitlines()[0]
    [mlp] = [entry for entry in json.loads(rendered["screen json"])["ranking"] if entry["arch"] == "mlp"]
    assert mlp["best_mystery_lr"] == 0.01 and mlp["best_mystery_val_loss"] == pytest.approx(0.35)
    assert "★ best Mystery rate" in rendered["compare table"]
    assert "mystery lr=1.0e-02" in rendered["compare table"]
    assert "| mlp | mystery lr=1.0e-02 | 0.3500 | 50.0% | ok | best Mystery rate |" in rendered["compare markdown"]
    compare = json.loads(rendered["compare json"])["architectures"][0]
    assert compare["baselines"]["mystery"]["label"] == "Mystery"
    assert compare["baselines"]["mystery"]["best_lr"] == 0.01


def test_a_process_with_the_method_registry_loaded_renders_the_same(fresh_report) -> None:
    """What a report shows depends on the saved results, not on what the process registered."""
    from alrao_cli.report import console
    from alrao_cli.results.records import load_study
    from alrao_cli.study.methods import baseline_methods

    assert "mystery" not in {method.name for method in baseline_methods()}  # loads the built-in methods
    for kind, folder in fresh_report["folders"].items():
        study = load_study(Path(folder))
        for output_format in console.FORMATS:
            out = Console(file=io.StringIO(), width=200)
            console.print_report(study, Path(folder), output_format, out)
            assert out.file.getvalue() == fresh_report["rendered"][f"{kind} {output_format}"], (kind, output_format)


@pytest.mark.slow
def test_alrao_report_as_a_command_imports_no_torch(tmp_path) -> None:
    """The real command, ``python -m alrao_cli report DIR``, with Python's import log."""
    run_dir = saved_study(tmp_path / "compare", "compare")
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "alrao_cli", "report", str(run_dir), "--format", "markdown"],
        check=False, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "| mlp | mystery lr=1.0e-02 | 0.3500 | 50.0% | ok | best Mystery rate |" in done.stdout
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert "alrao_cli.report.console" in imported  # the log is read right
    assert [name for name in imported if name == "torch" or name.startswith("torch.")] == []
