"""benchmarks/alrao_defaults.py: its small mode end to end, each variant scored."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "alrao_defaults.py"
VARIANTS = ["default", "copies-5", "last-epoch", "favoured-copy"]  # two trained, two read off the default's runs


def rows_after(heading: str, text: str) -> list[list[str]]:
    lines = text[text.index(heading):].splitlines()[3:]  # past the heading, the header and |---|
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_small_mode_scores_every_variant_against_both_truths_and_compares_each_with_the_default(tmp_path) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--small", "--cache", str(tmp_path), "--variants",
                           ",".join(VARIANTS[1:])], capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    scored = rows_after("## Every variant on every case", done.stdout)
    assert [(row[0], row[1], row[2]) for row in scored] == [
        ("zoo", variant, truth) for variant in VARIANTS for truth in ("sgd", "sgd+adam")
    ]
    for row in scored:  # every architecture scored by every variant: the favoured copy's losses were saved
        assert float(row[3]) >= -1 and row[9] == "0", row
    compared = rows_after("## Each variant against the default", done.stdout)
    assert [row[0] for row in compared] == VARIANTS[1:]
    suggested = rows_after("## A single SGD rate per architecture", done.stdout)
    assert [row[:2] for row in suggested[:2]] == [["zoo", "alrao's lr"], ["zoo", "0.1"]]
    assert suggested[2][1].endswith("(best in hindsight)") and len(suggested) == 3
    for row in suggested:  # each rule's regret is a percentage at or above zero, on both architectures
        assert float(row[2].removesuffix("%")) >= 0 and row[4].endswith("/2") and row[5] == "0/2"
    # Two screens were trained (the reading variants reuse the default's runs), each in its own folder.
    assert sorted(path.name for path in (tmp_path / "alrao-defaults").iterdir()) == ["zoo-copies-5", "zoo-default"]


def test_an_unknown_variant_is_a_usage_error() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--variants", "copies5"], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert done.returncode == 2 and "unknown variant 'copies5' (did you mean 'copies-5'?)" in done.stderr
