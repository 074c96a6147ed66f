"""benchmarks/fidelity.py: its small mode end to end, and its usage errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "fidelity.py"
COLUMNS = [
    "case", "screen", "truth", "tau", "tau 95%", "noise floor", "tau / floor", "rho",
    "regret", "best in top 3", "median gap", "runs / grid", "seconds / grid",
]


def run_benchmark(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *argv], check=False, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def table_after(heading: str, text: str) -> list[list[str]]:
    """The cells of the Markdown table that follows ``heading``, its header first."""
    lines = text[text.index(heading):].splitlines()[1:]
    rows = []
    for line in lines:
        if not line.startswith("|"):
            if rows:
                break
            continue
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return [row for row in rows if not set("".join(row)) <= {"-"}]  # without the |---| line


def number(cell: str) -> float:
    return float(cell.removesuffix("%"))


@pytest.mark.slow
def test_small_mode_prints_a_summary_table_with_every_column(tmp_path) -> None:
    done = run_benchmark("--small", "--cache", str(tmp_path / "cache"), "--markdown", str(tmp_path / "summary.md"),
                         "--json", str(tmp_path / "figures.json"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr

    header, *rows = table_after("## Summary across cases", done.stdout)
    assert header == COLUMNS
    assert [(row[0], row[1], row[2]) for row in rows] == [
        ("zoo", screen, truth) for screen in ("alrao", "adam", "alrao+adam") for truth in ("sgd", "sgd+adam")
    ]
    cell = {name: index for index, name in enumerate(COLUMNS)}
    for row in rows:
        assert -1 <= number(row[cell["tau"]]) <= 1 and -1 <= number(row[cell["rho"]]) <= 1
        low, high = (float(end) for end in row[cell["tau 95%"]].split(".."))
        assert -1 <= low <= high <= 1
        assert row[cell["noise floor"]] == "—"  # one seed of truth: no pair of seeds to compare
        assert number(row[cell["regret"]]) >= 0
        hits, seeds = row[cell["best in top 3"]].split("/")
        assert seeds == "1" and hits in {"0", "1"}
        number(row[cell["median gap"]])
        assert 0 < number(row[cell["runs / grid"]]) <= 1 and number(row[cell["seconds / grid"]]) > 0
    # Each single method runs once per architecture; the SGD grid of --small has three rates.
    assert {row[cell["runs / grid"]] for row in rows if "+" not in row[1]} == {"0.33"}
    assert {row[cell["runs / grid"]] for row in rows if "+" in row[1]} == {"0.67"}

    seeds_header, *seeds_rows = table_after("## What more seeds buy", done.stdout)
    assert seeds_header[:4] == ["case", "screen", "truth", "tau, N=1"] and len(seeds_rows) == 6

    assert (tmp_path / "summary.md").read_text().splitlines()[0] == "| " + " | ".join(COLUMNS) + " |"
    figures = json.loads((tmp_path / "figures.json").read_text())["cases"]["zoo"]
    assert figures["archs"] == ["mlp", "cnn1d"] and len(figures["figures"]) == 6
    assert list((tmp_path / "cache").glob("fidelity-truth-zoo-e2-*.json"))  # the truth, cached

    again = run_benchmark("--small", "--cache", str(tmp_path / "cache"), "--methods", "adam")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "truth over 1 seed(s), read from" in again.stdout
    assert "zoo sgd:" not in again.stderr and "zoo adam:" in again.stderr  # only the screen trained
    _, *again_rows = table_after("## Summary across cases", again.stdout)
    # The same figures: training is deterministic on one machine; only the seconds differ.
    before = [row[:cell["seconds / grid"]] for row in rows if row[1] == "adam"]
    assert [row[:cell["seconds / grid"]] for row in again_rows] == before


@pytest.mark.parametrize("argv, message", [
    (["--methods", "alrao,adma"], "unknown method 'adma' in --methods (did you mean 'adam'?"),
    (["--cases", "zo"], "unknown case 'zo' (did you mean 'zoo'?"),
], ids=["method", "case"])
def test_usage_errors_exit_2_before_training(tmp_path, argv, message) -> None:
    done = run_benchmark("--small", "--cache", str(tmp_path), *argv, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not list(tmp_path.iterdir())  # nothing trained, nothing written
