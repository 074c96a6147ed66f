"""What the loop does for the adaptive methods: their rates saved each epoch, 1cycle given the
run's length, Schedule-Free prepared before it validates; resumed runs equal uninterrupted ones."""

from __future__ import annotations

import math

import pytest

from alrao_cli.data.load import cached_data
from alrao_cli.data.spec import DataSpec
from alrao_cli.results.records import EpochRecord, RunResult
from alrao_cli.study.spec import Budget, MethodSpec, RunSpec
from alrao_cli.study.train import total_steps, train_run

DATA = DataSpec(subset=128)


def spec(method: str, budget: Budget, lr: float | None = None) -> RunSpec:
    return RunSpec(
        key=f"mlp|{method}|seed=0", arch="mlp", label="mlp", method=MethodSpec(method, lr=lr), data=DATA,
        budget=budget, batch_size=16, seed=0,
    )


@pytest.mark.parametrize(("budget", "expected"), [(Budget(steps=7), 7), (Budget(epochs=3), 3 * 8), (Budget(seconds=5.0), None)],
                         ids=["steps", "epochs", "seconds"])
def test_total_steps_follow_the_budget(budget, expected):
    assert total_steps(budget, per_epoch=8) == expected


@pytest.mark.parametrize("method", ["sgd-hd", "prodigy", "dog", "sf-sgd"])
def test_adaptive_methods_save_their_rate_every_epoch_and_it_round_trips(method):
    result = train_run(spec(method, Budget(epochs=2)), cached_data(DATA))
    assert result.status == "ok", result.reason
    rates = [record.rates for record in result.history]
    assert len(rates) == 2 and all(r and math.isfinite(r["lr"]) and r["lr"] > 0 for r in rates)
    assert RunResult.from_dict(result.to_dict()).history == result.history


def test_onecycle_gets_the_runs_length_and_trains_through_the_loop():
    result = train_run(spec("onecycle", Budget(steps=110)), cached_data(DATA))
    assert result.status == "ok", result.reason
    assert result.history[-1].step == 110 and result.history[-1].rates


def test_records_written_before_rates_still_load():
    plain = {"epoch": 1, "step": 8, "train_loss": 1.0, "train_acc": None, "val_loss": 1.1, "val_acc": 0.4,
             "seconds": 0.5, "posterior": None}
    assert EpochRecord.from_dict(plain).rates is None


def test_the_rates_are_drawn_beside_the_posterior(tmp_path):
    from alrao_cli.report.plots import study_plots
    from alrao_cli.results.records import StudyResult

    runs = (train_run(spec("sgd-hd", Budget(epochs=2)), cached_data(DATA)),
            train_run(spec("alrao", Budget(epochs=2)), cached_data(DATA)))
    study = StudyResult(kind="screen", config={"method": ["alrao", "sgd-hd"]}, runs=runs, started="2026-12-07T00:00:00")
    plots = {plot.name: plot for plot in study_plots(study)}
    assert {"curves-mlp.png", "posterior-mlp.png", "rates-mlp.png"} <= set(plots)
    figure = plots["rates-mlp.png"].draw()
    (axes,) = figure.axes
    assert [line.get_label() for line in axes.get_lines()] == ["sgd-hd"]  # Alrao records no single rate
    assert list(axes.get_lines()[0].get_ydata()) == [record.rates["lr"] for record in runs[0].history]


def test_a_run_whose_rates_are_subnormal_trained_nothing_and_is_not_ranked_ok():
    """--lr-min 1e-320: every rate is too small to move a float32 weight; flagged, not ranked first."""
    from dataclasses import replace as changed

    from alrao_cli.study.spec import AlraoOptions
    from alrao_cli.study.train import TRAINED_NOTHING

    tiny = changed(spec("alrao", Budget(steps=3)), method=MethodSpec("alrao", options=AlraoOptions(lr_min=1e-320, lr_max=2e-320)))
    result = train_run(tiny, cached_data(DATA))
    assert (result.status, result.reason) == ("failed", TRAINED_NOTHING)
    healthy = train_run(spec("alrao", Budget(steps=3)), cached_data(DATA))
    assert healthy.status == "ok"
