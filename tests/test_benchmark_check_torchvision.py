"""benchmarks/check_torchvision.py: a real run on a model that passes and one Alrao cannot wrap;
the models it does not check (too large, input too small), screened in this process."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "check_torchvision.py"
HEADER = ["model", "parameters", "result", "reason", "seconds"]


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("check_torchvision", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def table_rows(text: str) -> list[list[str]]:
    """The cells of the Markdown table in ``text``, its header first, without the |---| line."""
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in text.splitlines() if line.startswith("|")]
    return [row for row in rows if not set("".join(row)) <= set("-:")]


def test_a_run_prints_a_row_per_model_with_its_result_and_reason() -> None:
    # Two models at once: each model's process starts torch, which takes seconds.
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "shufflenet_v2_x0_5", "squeezenet1_0", "--jobs", "2", "--timeout", "120"],
        check=False, capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert "input 3x32x32, 10 classes" in done.stdout.splitlines()[0]
    header, *rows = table_rows(done.stdout)
    assert header == HEADER
    by_model = {row[0]: dict(zip(HEADER, row)) for row in rows}
    assert list(by_model) == ["shufflenet_v2_x0_5", "squeezenet1_0"]  # in the order given

    passed = by_model["shufflenet_v2_x0_5"]
    assert (passed["parameters"], passed["result"], passed["reason"]) == ("0.4 M", "passed", "—")
    assert float(passed["seconds"]) > 0

    unwrappable = by_model["squeezenet1_0"]
    assert (unwrappable["parameters"], unwrappable["result"]) == ("0.7 M", "failed: wrap")
    assert unwrappable["reason"].startswith("no output layer found: the model has no nn.Linear with 10 outputs (SqueezeNet)")
    assert done.stdout.rstrip().endswith("2 models: 1 passed, 1 failed")


def options(**changed) -> argparse.Namespace:
    return argparse.Namespace(**{"size": 32, "channels": 3, "classes": 10, "max_params": 150.0, **changed})


def test_a_model_that_needs_larger_images_is_not_run_with_its_error(script) -> None:
    row = script.screen("alexnet", options())  # its last max pool gets a 1x1 map from 32x32 images
    assert (row.params, row.result, row.seconds) == (57_044_810, "not run: input too small", None)
    assert row.reason.startswith("RuntimeError: Given input size: (256x1x1)")
    assert script.screen("alexnet", options(size=64)) == 57_044_810  # large enough: checked


def test_a_model_over_the_ceiling_is_skipped_with_its_count(script) -> None:
    row = script.screen("vit_b_16", options(max_params=50.0))  # before its input size is tried
    assert row == script.Row("vit_b_16", 85_806_346, "skipped", "85.8 M parameters, over the ceiling of 50 M")


def test_a_builder_the_meta_device_cannot_run_is_built_on_the_cpu(script) -> None:
    assert script.screen("regnet_y_400mf", options()) == 3_907_554  # regnet computes its widths with tensors


def test_the_summary_counts_failures_together_in_a_fixed_order(script) -> None:
    Row = script.Row
    rows = [Row("a", 1, "skipped", "x"), Row("b", 1, "failed: wrap", "y"), Row("c", 1, "passed", ""),
            Row("d", 1, "failed: train", "z"), Row("e", None, "timed out", "w", 5.0)]
    assert script.summary(rows) == "5 models: 1 passed, 2 failed, 1 skipped, 1 timed out"
    assert script.table([Row("f", None, "error", "a | b")])[-1] == "| f | — | error | a \\| b | — |"


def test_a_note_listing_many_parameters_counts_them_by_name(script) -> None:
    names = [f"features.{block}.{index}.layer_scale" for block in (1, 3) for index in range(3)] + ["head.gain"]
    note = "one rate per tensor (no per-feature rule) for: " + ", ".join(names)
    assert script.short_note(note) == "one rate per tensor (no per-feature rule) for: 6 *.layer_scale, 1 *.gain"
    assert script.short_note("one rate per tensor (no per-feature rule) for: a.gain, b") == (
        "one rate per tensor (no per-feature rule) for: a.gain, b")  # a few: as they are
    assert script.short_note("not compared: the model is not deterministic") == "not compared: the model is not deterministic"
