"""benchmarks/fidelity.py and alrao_defaults.py: their small modes end to end on one truth cache, and usage errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "fidelity.py"
DEFAULTS = ROOT / "benchmarks" / "alrao_defaults.py"
VARIANTS = ["default", "copies-5", "last-epoch", "favoured-copy"]  # two trained, two read off the default's runs
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

    # benchmarks/alrao_defaults.py on the same cache: it reads the truth and trains only its screens.
    defaults = subprocess.run(
        [sys.executable, str(DEFAULTS), "--small", "--cache", str(tmp_path / "cache"), "--variants", ",".join(VARIANTS[1:])],
        check=False, capture_output=True, text=True, timeout=240, cwd=ROOT,
    )
    assert defaults.returncode == 0, defaults.stderr[-3000:]
    assert "truth read from" in defaults.stdout
    assert "zoo sgd:" not in defaults.stderr and "zoo alrao:" in defaults.stderr  # only the screens trained
    scored = table_after("## Every variant on every case", defaults.stdout)[1:]
    assert [(row[0], row[1], row[2]) for row in scored] == [
        ("zoo", variant, truth) for variant in VARIANTS for truth in ("sgd", "sgd+adam")
    ]
    # The default variant is fidelity's Alrao screen again: the same tau (training is
    # deterministic on one machine; only the seconds differ).
    assert [row[3] for row in scored[:2]] == [row[cell["tau"]] for row in rows if row[1] == "alrao"]
    for row in scored:  # every architecture scored by every variant: the favoured copy's losses were saved
        assert row[9] == "0", row
    compared = table_after("## Each variant against the default", defaults.stdout)[1:]
    assert [row[0] for row in compared] == VARIANTS[1:]
    suggested = table_after("## A single SGD rate per architecture", defaults.stdout)[1:]
    assert [row[1] for row in suggested[:2]] == ["alrao's lr", "0.1"] and suggested[2][1].endswith("(best in hindsight)")
    for row in suggested:  # each rule's regret is a percentage at or above zero, on both architectures
        assert number(row[2]) >= 0 and row[4].endswith("/2") and row[5] == "0/2"
    # Two screens were trained (the reading variants reuse the default's runs), each in its own folder.
    assert sorted(path.name for path in (tmp_path / "cache" / "alrao-defaults").iterdir()) == [
        "zoo-copies-5", "zoo-default"
    ]


@pytest.mark.parametrize("script, argv, message", [
    (SCRIPT, ["--methods", "alrao,adma"], "unknown method 'adma' in --methods (did you mean 'adam'?"),
    (DEFAULTS, ["--cases", "zo"], "unknown case 'zo' (did you mean 'zoo'?"),
], ids=["fidelity method", "alrao_defaults case"])
def test_usage_errors_exit_2_before_training(tmp_path, script, argv, message) -> None:
    done = subprocess.run([sys.executable, str(script), "--small", "--cache", str(tmp_path), *argv], check=False,
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not list(tmp_path.iterdir())  # nothing trained, nothing written
