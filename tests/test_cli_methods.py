"""`alrao methods`, `--method` and compare's `--methods` through the real command line."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from support import quick_flags

from alrao_cli.cli.app import app
from alrao_cli.cli.study import split_compare_methods
from alrao_cli.study.methods import method_catalog

runner = CliRunner()


def test_alrao_methods_lists_every_registered_method_with_its_defaults_and_cost():
    result = runner.invoke(app, ["methods", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert [entry["name"] for entry in listed] == [info.name for info in method_catalog()]
    alrao = next(entry for entry in listed if entry["name"] == "alrao")
    assert alrao["defaults"]["lr_min"] == 1e-5 and alrao["cost"] == "one run" and "Blier" in alrao["paper"]
    sgd = next(entry for entry in listed if entry["name"] == "sgd")
    assert sgd["cost"] == "one run per --grid rate"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alrao,sgd-grid,adam", {"method": ["alrao"], "baselines": ["sgd-grid", "adam"]}),
        ("sgd-grid,adam,alrao", {"method": ["adam"], "baselines": ["sgd-grid", "alrao"]}),
        ("adam", {"method": ["adam"], "baselines": []}),
    ],
    ids=["default", "first-run-once-is-measured", "alone"],
)
def test_compare_methods_splits_into_the_measured_method_and_baselines(text, expected):
    assert split_compare_methods(text) == expected


def test_compare_methods_of_grids_only_is_a_usage_error():
    result = runner.invoke(app, ["compare", "mlp", "--methods", "sgd-grid"])
    assert result.exit_code == 2
    assert "at least one method run once" in result.output


@pytest.mark.parametrize(
    ("methods", "said"),
    [
        ("sgd", "sgd is tuned over --grid, so it cannot be the method measured against the grid"),
        ("lars,sgd-grid", "lars is tuned over --grid"),
        ("alrao,adam", "sgd-grid is not among its methods"),
    ],
    ids=["sgd-measured", "grid-method-measured", "no-sgd-grid"],
)
def test_a_compare_that_cannot_measure_against_the_sgd_grid_is_refused_before_training(tmp_path, methods, said):
    out = tmp_path / "run"
    result = runner.invoke(app, ["compare", "mlp", "--methods", methods, *quick_flags(64, steps=2), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert said in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_a_screen_by_a_grid_tuned_method_ranks_by_its_best_rate_and_a_diverged_rate_is_no_problem(tmp_path):
    flags = [*quick_flags(128, steps=6, device="cpu"), "--method", "sgd", "--json"]
    result = runner.invoke(app, ["screen", "mlp", *flags, "--grid", "0.01,1000", "--out", str(tmp_path / "one")])
    assert result.exit_code == 0, result.output  # lr 1000 diverged: one rate of the grid, not the study
    (entry,) = json.loads(result.stdout)["ranking"]
    assert entry["status"] == "ok" and entry["lr"] == 0.01
    table = runner.invoke(app, ["report", str(tmp_path / "one")])
    assert "SGD at its best --grid rate; lr = that rate" in table.output and "one run each" not in table.output
    result = runner.invoke(app, ["screen", "mlp", *flags, "--grid", "1000,100000", "--out", str(tmp_path / "none")])
    assert result.exit_code == 1, result.output  # no healthy rate at all: the architecture has no result


def test_an_unknown_method_is_one_line_with_did_you_mean():
    result = runner.invoke(app, ["screen", "mlp", "--method", "adamm", "--device", "cpu"])
    assert result.exit_code == 2, result.output
    assert "unknown method 'adamm'" in result.output and "did you mean 'adam'" in result.output
    assert "Traceback" not in result.output


def test_a_portfolio_screen_saves_both_methods_and_ranks_by_the_better(tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(
        app, ["screen", "mlp", "--method", "alrao,adam", "--subset", "256", "--epochs", "1", "--no-plots",
              "--json", "--out", str(out), "--device", "cpu"],
    )
    assert result.exit_code == 0, result.output
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert [run["method"] for run in runs] == ["alrao", "adam"]
    assert all(run["method_label"] in ("Alrao", "Adam") for run in runs)


@pytest.mark.parametrize("method", ["prodigy", "dadapt-adam", "dog", "sf-adamw"])
def test_a_wrapped_package_method_screens_and_compares_end_to_end(tmp_path, method):
    """Each learning-rate-free package, through the real screen and compare commands."""
    quick = [*quick_flags(128, steps=4, device="cpu"), "--json"]
    screened = runner.invoke(app, ["screen", "mlp", "--method", method, *quick, "--out", str(tmp_path / "screen")])
    assert screened.exit_code == 0, screened.output
    (entry,) = json.loads(screened.stdout)["ranking"]
    assert entry["method"] == method and entry["status"] == "ok"
    compared = runner.invoke(
        app, ["compare", "mlp", "--methods", f"{method},sgd-grid", "--grid", "0.1", *quick, "--out", str(tmp_path / "compare")]
    )
    assert compared.exit_code == 0, compared.output
    (architecture,) = json.loads(compared.stdout)["architectures"]
    assert architecture["alrao"]["status"] == "ok"  # the measured method's numbers: here the package's
    saved = json.loads((tmp_path / "compare" / "results.json").read_text())["runs"]
    assert [run["method"] for run in saved] == [method, "sgd"]
    assert saved[0]["history"][-1]["rates"]["lr"] > 0
