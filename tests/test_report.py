"""Reports: tables render the numbers, JSON is strict and exactly shaped, plots are written."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from alrao_cli.errors import AlraoUserError
from alrao_cli.report import exports, plots, tables
from alrao_cli.report import format as fmt
from alrao_cli.results.ranking import compare_architectures, rank_screen
from alrao_cli.results.records import RunResult, StudyResult

NAN = math.nan
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
from support import run_result

COPY_LRS = (1e-4, 1e-3, 1e-2, 1e-1)


def result(arch: str, losses: tuple[float, ...] = (), *, method: str = "alrao", **fields) -> RunResult:
    """A run as a report sees it: Alrao's with its posterior and copies' rates, ten steps an epoch."""
    alrao = method == "alrao"
    return run_result(
        arch, losses, method=method, params=12345, seconds=2.5, train_gap=0.1, steps_per_epoch=10,
        posterior=(0.1, 0.2, 0.6, 0.1) if alrao else None, copy_lrs=COPY_LRS if alrao else None, **fields,
    )


def screen_runs() -> list[RunResult]:
    return [
        result("mlp", (0.9, 0.5, 0.4), acc=0.875),
        result("cnn1d", (0.8, 0.3)),
        result("broken.py:Net", status="failed", reason="ImportError: no module named [foo]"),
        result("vgg", (1.0, NAN), status="diverged", reason="validation loss became nan at step 20"),
    ]


def compare_runs() -> list[RunResult]:
    runs = []
    for seed, shift in [(0, 0.0), (1, 0.02)]:
        runs += [
            result("mlp", (0.5, 0.33 + shift), seed=seed),
            result("mlp", (0.6, 0.5 + shift), method="sgd", lr=1e-5, seed=seed),
            result("mlp", (0.4, 0.3 + shift), method="sgd", lr=0.1, seed=seed),
            result("mlp", (5.0, NAN), method="sgd", lr=1.0, seed=seed, status="diverged", reason="loss became nan"),
            result("mlp", (0.36 + shift,), method="adam", lr=1e-3, seed=seed),
            result("cnn1d", (0.45 + shift,), seed=seed),
            result("cnn1d", (0.2 + shift,), method="sgd", lr=0.1, seed=seed),
            result("cnn1d", (0.22 + shift,), method="sgd", lr=1e-5, seed=seed),
        ]
    return runs


def render(table) -> str:
    console = Console(record=True, width=160)
    console.print(table)
    return console.export_text()


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1.0, 2.0, 3.0], "▁▅█"),
        ([3.0, 2.0, 1.0], "█▅▁"),
        ([NAN, 1.0, 2.0, math.inf], " ▁█ "),
        ([0.5, 0.5], "▄▄"),
        ([NAN], " "),
        ([], ""),
        ([0.0, 7.0, 1.0, 6.0], "▁█▂▇"),
    ],
)
def test_sparkline(values, expected) -> None:
    assert fmt.sparkline(values) == expected


@pytest.mark.parametrize(
    ("lr", "shown", "key"),
    [
        (0.032, "3.2e-02", "0.032"), (1e-5, "1.0e-05", "1e-05"), (1.0, "1.0e+00", "1"), (0.1, "1.0e-01", "0.1"),
        (0.0316227766017, "3.2e-02", "0.0316227766017"),
    ],
)
def test_rate_formats(lr, shown, key) -> None:
    assert fmt.format_lr(lr) == shown
    assert fmt.lr_key(lr) == key
    assert float(key) == lr  # a JSON key gives the rate back exactly


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(2.54, "2.5s"), (59.9, "59.9s"), (61, "1m01s"), (3599, "59m59s"), (3600 + 125, "1h02m"), (NAN, "—")],
)
def test_format_seconds(seconds, shown) -> None:
    assert fmt.format_seconds(seconds) == shown


def test_screen_table_shows_every_architecture_and_the_reasons() -> None:
    text = render(tables.screen_table(rank_screen(screen_runs())))
    lines = text.splitlines()

    def line_of(arch: str) -> str:
        return next(line for line in lines if arch in line)

    assert "0.3000" in line_of("cnn1d") and "▁" in line_of("cnn1d")
    assert "0.4000" in line_of("mlp") and "87.5%" in line_of("mlp") and "1.0e-02" in line_of("mlp")
    assert "12,345" in line_of("mlp")
    assert "failed: ImportError: no module named [foo]" in text  # user text is not markup
    assert "diverged: validation loss became nan" in text
    assert lines.index(line_of("cnn1d")) < lines.index(line_of("mlp")) < lines.index(line_of("vgg"))
    assert lines.index(line_of("vgg")) < lines.index(line_of("broken.py:Net"))


def test_screen_table_with_baselines_shows_best_sgd_and_adam() -> None:
    runs = compare_runs()
    text = render(tables.screen_table(rank_screen(runs)))
    mlp_line = next(line for line in text.splitlines() if "mlp" in line)
    assert "best SGD" in text and "Adam" in text
    assert "0.3100 (1.0e-01)" in mlp_line  # mean over the seeds at the best rate
    assert "0.3700" in mlp_line  # Adam


def test_compare_tables_render_methods_marks_and_correlations() -> None:
    summary = compare_architectures(compare_runs())
    rendered = tables.compare_tables(summary)
    assert len(rendered) == 3  # two architectures, then the ranking
    mlp = render(rendered[0])
    assert "sgd lr=1.0e-01" in mlp and "★ best SGD rate" in mlp.split("sgd lr=1.0e-01")[1].splitlines()[0]
    assert "0.3400 ± 0.0141" in mlp  # Alrao's mean ± std over two seeds
    assert f"gap {100 * (0.34 / 0.31 - 1):+.1f}%" in mlp
    assert "diverged" in mlp and "loss became nan" in mlp
    assert "adam lr=1.0e-03" in mlp
    ranking = render(rendered[2])
    assert "Kendall tau = -1.000" in ranking and "Spearman rho = -1.000" in ranking
    assert "grid/Alrao = 2.5x" in ranking


def test_screen_json_is_exactly_shaped_and_strict() -> None:
    data = exports.screen_json("runs/x", rank_screen(screen_runs()))
    json.dumps(data, allow_nan=False)
    assert set(data) == {"run_dir", "ranking"} and data["run_dir"] == "runs/x"
    keys = {"rank", "arch", "status", "val_loss", "val_acc", "epoch", "lr_selected", "params", "seconds", "reason", "method", "lr"}
    assert all(set(entry) == keys for entry in data["ranking"])  # no baseline ran: no baseline fields
    first, *_, last = data["ranking"]
    assert first == {
        "rank": 1, "arch": "cnn1d", "status": "ok", "val_loss": 0.3, "val_acc": 0.5, "epoch": 2,
        "lr_selected": 1e-2, "params": 12345, "seconds": 2.5, "reason": None, "method": "alrao", "lr": None,
    }
    assert (last["arch"], last["status"], last["val_loss"], last["epoch"]) == ("broken.py:Net", "failed", None, None)


def test_compare_json_is_exactly_shaped_and_strict() -> None:
    data = exports.compare_json(Path("runs/c"), compare_architectures(compare_runs()))
    json.dumps(data, allow_nan=False)
    assert set(data) == {"run_dir", "architectures", "kendall_tau", "spearman_rho", "seconds"}
    assert data["seconds"] == {"alrao": 10.0, "grid": 25.0}
    mlp = data["architectures"][0]
    assert set(mlp) == {"arch", "alrao", "sgd", "adam", "best_sgd_lr", "gap", "seeds"}
    assert list(mlp["sgd"]) == ["1e-05", "0.1", "1"]
    assert mlp["sgd"]["1"] == {
        "val_loss": 5.0, "val_acc": 0.5, "status": "diverged", "val_loss_std": 0.0, "val_acc_std": 0.0,
    }
    assert mlp["alrao"]["val_loss"] == pytest.approx(0.34) and mlp["alrao"]["status"] == "ok"
    assert mlp["alrao"]["val_loss_std"] == pytest.approx(statistics.stdev([0.33, 0.35]))
    assert mlp["alrao"]["val_acc_std"] == 0.0 and mlp["seeds"][0]["alrao"]["val_loss_std"] is None
    assert mlp["best_sgd_lr"] == 0.1 and mlp["gap"] == pytest.approx(0.34 / 0.31 - 1)
    assert mlp["adam"]["val_loss"] == pytest.approx(0.37)
    assert [seed["seed"] for seed in mlp["seeds"]] == [0, 1]
    assert set(mlp["seeds"][1]) == {"seed", "arch", "alrao", "sgd", "adam", "best_sgd_lr", "gap"}
    assert mlp["seeds"][1]["alrao"]["val_loss"] == pytest.approx(0.35)
    assert data["kendall_tau"] == pytest.approx(-1.0)


def test_compare_json_writes_non_finite_numbers_as_null() -> None:
    runs = [
        result("mlp", (0.3,)),
        RunResult(key="mlp|sgd|lr=0.1|seed=0", arch="mlp", method="sgd", lr=0.1, seed=0, status="ok",
                  reason=None, params=None, seconds=NAN),
    ]
    data = exports.compare_json("d", compare_architectures(runs))
    json.dumps(data, allow_nan=False)
    assert data["architectures"][0]["sgd"]["0.1"] == {
        "val_loss": None, "val_acc": None, "status": "diverged", "val_loss_std": None, "val_acc_std": None,
    }
    assert data["seconds"]["grid"] == 0.0


def test_screen_csv_and_markdown() -> None:
    ranked = rank_screen(screen_runs())
    rows = list(csv.DictReader(io.StringIO(exports.to_csv(ranked))))
    assert [row["arch"] for row in rows] == ["cnn1d", "mlp", "vgg", "broken.py:Net"]
    assert float(rows[0]["val_loss"]) == 0.3 and rows[0]["reason"] == ""
    assert rows[3]["val_loss"] == "" and rows[3]["status"] == "failed"

    markdown = exports.to_markdown(ranked).splitlines()
    assert len(markdown) == 2 + len(ranked)
    assert markdown[1].startswith("|---|")
    assert all(line.startswith("| ") and line.endswith(" |") for line in markdown[2:])
    assert "| 1 | cnn1d | 12,345 | 0.3000 |" in markdown[2]


def test_markdown_escapes_pipes_in_reasons() -> None:
    ranked = rank_screen([result("mlp", status="failed", reason="shape a|b mismatch")])
    assert "shape a\\|b mismatch" in exports.to_markdown(ranked)


def test_compare_csv_and_markdown() -> None:
    summary = compare_architectures(compare_runs())
    rows = list(csv.DictReader(io.StringIO(exports.compare_to_csv(summary))))
    mlp = [row for row in rows if row["arch"] == "mlp"]
    assert [row["method"] for row in mlp] == ["alrao", "sgd", "sgd", "sgd", "adam"]
    assert [row["best_sgd"] for row in mlp] == ["False", "False", "True", "False", "False"]
    assert float(mlp[0]["gap"]) == pytest.approx(0.34 / 0.31 - 1) and mlp[1]["gap"] == ""

    markdown = exports.compare_to_markdown(summary)
    assert "| mlp | sgd lr=1.0e-01 | 0.3100 ± 0.0141 |" in markdown
    assert "| cnn1d | 2 | 1 |" in markdown  # Alrao ranks cnn1d second, SGD first
    assert "Kendall tau = -1.000" in markdown


def test_plots_are_written_with_their_names(tmp_path: Path) -> None:
    runs = compare_runs() + [result("zoo/odd name:Net", (0.5, 0.4))]
    study = StudyResult(kind="compare", config={}, runs=tuple(runs), started="2026-01-01T00:00:00")
    out = tmp_path / "plots"

    curves = plots.plot_learning_curves(study, out)
    posterior = plots.plot_posterior(study, out)
    ranking = plots.plot_rank_comparison(compare_architectures(runs), out)

    assert [path.name for path in curves] == ["curves-mlp.png", "curves-cnn1d.png", "curves-zoo_odd_name_Net.png"]
    assert [path.name for path in posterior] == [
        "posterior-mlp.png", "posterior-cnn1d.png", "posterior-zoo_odd_name_Net.png"
    ]
    assert [path.name for path in ranking] == ["ranking.png"]
    for path in curves + posterior + ranking:
        assert path.parent == out and path.read_bytes().startswith(PNG_SIGNATURE)
        assert path.stat().st_size > 1000


def test_plots_with_nothing_to_draw_return_nothing(tmp_path: Path) -> None:
    runs = (result("mlp", status="failed", reason="boom"), result("cnn1d", (0.3,), method="sgd", lr=0.1))
    study = StudyResult(kind="screen", config={}, runs=runs, started="2026-01-01T00:00:00")
    assert plots.plot_posterior(study, tmp_path) == []
    assert plots.plot_rank_comparison(compare_architectures(runs), tmp_path) == []
    assert [path.name for path in plots.plot_learning_curves(study, tmp_path)] == ["curves-cnn1d.png"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["curves-cnn1d.png"]


def test_distinct_architectures_never_share_a_plot_file(tmp_path: Path) -> None:
    runs = (result("a/b", (0.3,)), result("a:b", (0.4,)))
    study = StudyResult(kind="screen", config={}, runs=runs, started="2026-01-01T00:00:00")
    assert [path.name for path in plots.plot_learning_curves(study, tmp_path)] == ["curves-a_b.png", "curves-a_b-2.png"]


def test_an_unwritable_plot_folder_is_a_user_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    study = StudyResult(kind="screen", config={}, runs=(result("mlp", (0.3,)),), started="2026-01-01T00:00:00")
    with pytest.raises(AlraoUserError, match="cannot write the plot"):
        plots.plot_learning_curves(study, blocker / "plots")


# -- large losses, standard deviations, ties -----------------------------------------------
@pytest.mark.parametrize(
    ("value", "std", "shown"),
    [
        (0.31, 0.0141, "0.3100 ± 0.0141"),
        (9999.0, None, "9999.0000"),
        (12345.6, None, "1.235e+04"),
        # cnn1d at SGD lr=100: two seeds reached 2.6e18 and 1e20, and stayed finite
        (49058650518445883392.0, 69255850796946882560.0, "4.906e+19 ± 6.926e+19"),
        (0.3, 2.5e22, "0.3000 ± 2.5e+22"),
        (None, None, "—"),
    ],
)
def test_huge_losses_are_shown_short(value, std, shown) -> None:
    assert fmt.format_loss(value, std) == shown


def test_a_blown_up_rate_does_not_widen_the_compare_table() -> None:
    runs = [
        result("cnn1d", (0.6,)),
        result("cnn1d", (0.3,), method="sgd", lr=0.1),
        result("cnn1d", (2.6e18, 6e22), method="sgd", lr=100.0),
        result("cnn1d", (1e20,), method="sgd", lr=100.0, seed=1),
    ]
    text = render(tables.compare_tables(compare_architectures(runs))[0])
    row = next(line for line in text.splitlines() if "sgd lr=1.0e+02" in line)
    assert row.split("│")[2].strip() == "5.13e+19 ± 6.887e+19"  # mean and std of 2.6e18 and 1e20


def test_accuracy_std_is_shown_where_the_loss_std_is() -> None:
    runs = [result("mlp", (0.3,), seed=0, acc=0.8), result("mlp", (0.4,), seed=1, acc=0.9)]
    summary = compare_architectures(runs)
    acc = f"{100 * 0.85:.1f}% ± {100 * statistics.stdev([0.8, 0.9]):.1f}%"
    assert acc in render(tables.compare_tables(summary)[0])
    assert acc in render(tables.screen_table(rank_screen(runs)))
    assert f"| {acc} |" in exports.to_markdown(rank_screen(runs))
    assert exports.compare_json("d", summary)["architectures"][0]["alrao"]["val_acc_std"] == pytest.approx(
        statistics.stdev([0.8, 0.9])
    )
    [row] = csv.DictReader(io.StringIO(exports.to_csv(rank_screen(runs))))
    assert float(row["val_acc_std"]) == pytest.approx(statistics.stdev([0.8, 0.9]))


def test_tied_architectures_share_a_rank_in_tables_and_plot() -> None:
    # a and b tie under Alrao; under SGD a is first, c second, b third.
    runs = [result("a", (0.2,)), result("b", (0.2,)), result("c", (0.3,))]
    runs += [result(arch, (loss,), method="sgd", lr=0.1) for arch, loss in {"a": 0.1, "b": 0.3, "c": 0.2}.items()]
    summary = compare_architectures(runs)

    rows = [line.split("│")[1:4] for line in render(tables.compare_tables(summary)[-1]).splitlines() if "│" in line]
    assert [[cell.strip() for cell in row] for row in rows] == [["a", "1=", "1"], ["b", "1=", "3"], ["c", "3", "2"]]
    markdown = exports.compare_to_markdown(summary)
    assert "| a | 1= | 1 |" in markdown and "| b | 1= | 3 |" in markdown and "| c | 3 | 2 |" in markdown

    figure = plots.rank_comparison_figure(summary)
    axes = figure.axes[0]
    assert [label.get_text() for label in axes.get_xticklabels()] == ["1=", "2", "3"]
    assert [label.get_text() for label in axes.get_yticklabels()] == ["1", "2", "3"]
    [points] = axes.collections
    assert [tuple(point) for point in points.get_offsets()] == [(1, 1), (1, 3), (3, 2)]
    assert sorted(text.get_text() for text in axes.texts) == ["a", "b", "c"]


# -- screen baselines: only those that ran, in every format --------------------------------
def test_screen_json_csv_and_markdown_carry_the_baselines() -> None:
    ranked = rank_screen(compare_runs())
    mlp = next(entry for entry in exports.screen_json("d", ranked)["ranking"] if entry["arch"] == "mlp")
    assert mlp["best_sgd_lr"] == 0.1 and mlp["best_sgd_val_loss"] == pytest.approx(0.31)
    assert mlp["adam_val_loss"] == pytest.approx(0.37)
    assert mlp["gap"] == pytest.approx(0.34 / 0.31 - 1)
    cnn = next(entry for entry in exports.screen_json("d", ranked)["ranking"] if entry["arch"] == "cnn1d")
    assert cnn["adam_val_loss"] is None and cnn["best_sgd_lr"] == 0.1  # no Adam run on cnn1d

    rows = {row["arch"]: row for row in csv.DictReader(io.StringIO(exports.to_csv(ranked)))}
    assert float(rows["mlp"]["best_sgd_val_loss"]) == pytest.approx(0.31) and rows["cnn1d"]["adam_val_loss"] == ""
    header = exports.to_markdown(ranked).splitlines()[0]
    assert "best SGD (lr)" in header and "| Adam |" in header
    assert "| 0.3100 (1.0e-01) | 0.3700 |" in exports.to_markdown(ranked)


def test_screen_with_adam_alone_shows_no_sgd_column() -> None:
    runs = [result("mlp", (0.3,)), result("mlp", (0.25,), method="adam", lr=1e-3)]
    ranked = rank_screen(runs)
    text = render(tables.screen_table(ranked))
    assert "Adam" in text and "SGD" not in text
    [entry] = exports.screen_json("d", ranked)["ranking"]
    assert entry["adam_val_loss"] == 0.25 and "best_sgd_lr" not in entry and "gap" not in entry


def test_a_diverged_single_run_baseline_shows_its_status() -> None:
    runs = [result("mlp", (0.3,)), result("mlp", (9.0, NAN), method="adam", lr=1e-3, status="diverged", reason="nan")]
    ranked = rank_screen(runs)
    row = next(line for line in render(tables.screen_table(ranked)).splitlines() if "mlp" in line)
    assert row.rstrip(" │").endswith("diverged")
    assert exports.screen_json("d", ranked)["ranking"][0]["adam_val_loss"] is None


# -- plots: what is drawn ------------------------------------------------------------------
def legend_labels(axes) -> list[str]:
    return [text.get_text() for text in axes.get_legend().get_texts()]


def drawn(axes) -> dict[str, list[float]]:
    """Each line of the axes that has data, by its label: its y values."""
    return {line.get_label(): list(line.get_ydata()) for line in axes.get_lines() if len(line.get_ydata())}


def study_of(runs, kind: str = "compare") -> StudyResult:
    return StudyResult(kind=kind, config={}, runs=tuple(runs), started="2026-01-01T00:00:00")


def test_learning_curves_draw_every_run_and_list_the_diverged_one() -> None:
    runs = compare_runs() + [
        RunResult(key="mlp|sgd|lr=10|seed=0", arch="mlp", method="sgd", lr=10.0, seed=0, status="diverged",
                  reason="loss became nan at step 3", params=None, seconds=0.1),  # no epoch finished
    ]
    figures = plots.learning_curve_figures(study_of(runs))
    assert list(figures) == ["mlp", "cnn1d"]
    train_axes, val_axes = figures["mlp"].axes
    # lr=1 reached 5.0, far above every healthy curve (at most 0.6): cut off the axis, and marked.
    diverged_at_one = "sgd lr=1.0e+00 (diverged) (off scale)"
    labels = [
        "alrao", "sgd lr=1.0e-05", "sgd lr=1.0e-01", diverged_at_one, "sgd lr=1.0e+01 (diverged)", "adam lr=1.0e-03",
    ]
    assert legend_labels(val_axes) == labels
    curves = drawn(val_axes)
    assert list(curves) == [label for label in labels if label != "sgd lr=1.0e+01 (diverged)"]  # legend only
    assert curves["alrao"] == [0.5, 0.33]  # seed 0 only
    assert curves[diverged_at_one][0] == 5.0 and math.isnan(curves[diverged_at_one][1])
    assert val_axes.get_ylim()[1] < 5.0
    assert drawn(train_axes)["sgd lr=1.0e-01"] == pytest.approx([0.5, 0.4])
    assert all(float(tick).is_integer() for tick in val_axes.get_xticks())  # whole epochs


def test_one_epoch_curves_are_marked_points_on_a_whole_epoch_axis() -> None:
    runs = [result("mlp", (0.7,)), result("mlp", (0.9,), method="adam", lr=1e-3)]
    (figure,) = plots.learning_curve_figures(study_of(runs, "screen")).values()
    for axes in figure.axes:
        lines = [line for line in axes.get_lines() if len(line.get_ydata())]
        assert len(lines) == 2 and all(line.get_marker() == "o" for line in lines)  # a line of one point is invisible
        assert list(axes.get_xticks()) == [1.0]


def test_a_rate_keeps_its_colour_across_architectures() -> None:
    """The palette spans the study's whole grid: cnn1d ran no lr=1, its rates keep mlp's colours."""
    from matplotlib import colormaps

    figures = plots.learning_curve_figures(study_of(compare_runs()))
    colour = {
        arch: {line.get_label(): line.get_color() for line in figure.axes[1].get_lines()}
        for arch, figure in figures.items()
    }
    viridis = colormaps["viridis"]
    for arch in ("mlp", "cnn1d"):
        assert colour[arch]["sgd lr=1.0e-05"] == viridis(0.0)  # rates 1e-5, 0.1, 1 of the study
        assert colour[arch]["sgd lr=1.0e-01"] == viridis(0.5)
    assert colour["mlp"]["sgd lr=1.0e+00 (diverged) (off scale)"] == viridis(1.0)


def test_a_rate_that_blew_up_is_cut_off_and_marked() -> None:
    runs = [
        result("cnn1d", (0.5, 0.4)),
        result("cnn1d", (0.6, 0.3), method="sgd", lr=0.1),
        result("cnn1d", (2.6e18, 6e22), method="sgd", lr=100.0),  # finite, so status ok
    ]
    [figure] = plots.learning_curve_figures(study_of(runs)).values()
    for axes, best, worst_healthy in zip(figure.axes, (0.4, 0.3), (0.7, 0.6)):  # train loss is val + 0.1
        low, high = axes.get_ylim()
        assert worst_healthy < high < plots.CLIP_FACTOR * worst_healthy and low < best
        assert axes.get_yscale() == "linear"  # 0.3 to 0.7: less than a decade
    assert legend_labels(figure.axes[1]) == ["alrao", "sgd lr=1.0e-01", "sgd lr=1.0e+02 (off scale)"]


@pytest.mark.parametrize(("losses", "scale"), [((2.3, 1.2, 0.9), "linear"), ((2.3, 0.5, 0.05), "log")])
def test_a_log_axis_only_over_more_than_a_decade(losses, scale) -> None:
    [figure] = plots.learning_curve_figures(study_of([result("mlp", losses)])).values()
    assert figure.axes[1].get_yscale() == scale


def test_the_posterior_figure_stacks_one_band_per_copy() -> None:
    figures = plots.posterior_figures(study_of(compare_runs()))
    axes = figures["mlp"].axes[0]
    assert len(axes.collections) == len(COPY_LRS)
    assert legend_labels(axes) == ["lr 1.0e-01", "lr 1.0e-02", "lr 1.0e-03", "lr 1.0e-04"]  # top band first
    assert all(float(tick).is_integer() for tick in axes.get_xticks())


def test_the_rank_figure_places_each_architecture() -> None:
    figure = plots.rank_comparison_figure(compare_architectures(compare_runs()))
    axes = figure.axes[0]
    [points] = axes.collections
    # mlp: Alrao 0.34 < cnn1d 0.46, but SGD: cnn1d 0.21 < mlp 0.31.
    assert [tuple(point) for point in points.get_offsets()] == [(1, 2), (2, 1)]
    assert [text.get_text() for text in axes.texts] == ["mlp", "cnn1d"]
    assert axes.get_title() == "Kendall tau -1.00, Spearman rho -1.00"


# -- a newly registered baseline: no change in ranking or report ----------------------------
@pytest.fixture
def toy_methods():
    """Two baselines registered as a user would add one: a class each, nothing else."""
    from alrao_cli.study.methods import METHODS, TrainingMethod, register_method

    @register_method("toy")
    class Toy(TrainingMethod):
        label = "Toy"
        default_lr = 0.5

        def learner(self, model, spec, context):
            raise NotImplementedError  # these tests read results, they train nothing

    @register_method("toygrid")
    class ToyGrid(Toy):
        tuned_over_grid = True  # no label: shown by its name

    yield
    del METHODS["toy"], METHODS["toygrid"]


def toy_runs() -> list[RunResult]:
    """Results as training writes them: each describes its method as the registry does."""
    from alrao_cli.study.methods import described
    from alrao_cli.study.spec import MethodSpec

    runs = [
        result("mlp", (0.5, 0.4)),
        result("mlp", (0.3,), method="sgd", lr=0.1),
        result("mlp", (0.35,), method="adam", lr=1e-3),
        result("mlp", (0.4, 0.28), method="toygrid", lr=0.1),
        result("mlp", (0.5,), method="toygrid", lr=0.01),
        result("mlp", (0.32,), method="toy", lr=0.5),
    ]
    return [replace(run, **described(MethodSpec(run.method))) for run in runs]


def test_a_registered_baseline_flows_through_ranking_and_report(toy_methods) -> None:
    summary = compare_architectures(toy_runs())
    [mlp] = summary.architectures
    assert [(b.method, b.label, b.tuned_over_grid) for b in mlp.baselines] == [
        ("sgd", "SGD", True), ("toygrid", "toygrid", True), ("adam", "Adam", False), ("toy", "Toy", False),
    ]  # tuned over a grid first, then by name, whatever the order of the results
    assert mlp.best_sgd_lr == 0.1 and mlp.gap == pytest.approx(0.4 / 0.3 - 1)  # still against SGD

    table = render(tables.compare_tables(summary)[0])
    assert "toy lr=5.0e-01" in table and "toygrid lr=1.0e-02" in table
    assert "★ best toygrid rate" in next(line for line in table.splitlines() if "toygrid lr=1.0e-01" in line)

    data = exports.compare_json("d", summary)["architectures"][0]
    assert (list(data["sgd"]), data["adam"]["val_loss"], data["best_sgd_lr"]) == (["0.1"], 0.35, 0.1)
    assert data["baselines"]["toy"] == {
        "label": "Toy", "lr": 0.5, "val_loss": 0.32, "val_acc": 0.5, "status": "ok",
        "val_loss_std": None, "val_acc_std": None,
    }
    assert list(data["baselines"]["toygrid"]["rates"]) == ["0.01", "0.1"]
    assert data["baselines"]["toygrid"]["best_lr"] == 0.1 and data["seeds"][0]["baselines"]["toy"]["lr"] == 0.5
    methods = [row["method"] for row in csv.DictReader(io.StringIO(exports.compare_to_csv(summary)))]
    assert methods == ["alrao", "sgd", "toygrid", "toygrid", "adam", "toy"]

    ranked = rank_screen(toy_runs())
    header = next(line for line in render(tables.screen_table(ranked)).splitlines() if "architecture" in line)
    columns = ("best SGD (lr)", "best toygrid (lr)", "Adam", "Toy")
    assert sorted((name for name in columns if name in header), key=header.index) == list(columns)
    [entry] = exports.screen_json("d", ranked)["ranking"]
    assert (entry["toy_val_loss"], entry["best_toygrid_lr"], entry["best_toygrid_val_loss"]) == (0.32, 0.1, 0.28)

    [figure] = plots.learning_curve_figures(study_of(toy_runs())).values()
    assert {"toy lr=5.0e-01", "toygrid lr=1.0e-02", "toygrid lr=1.0e-01"} <= set(legend_labels(figure.axes[1]))


def test_names_from_a_results_file_never_reach_the_terminal_as_escape_sequences() -> None:
    hostile = "evil\x1b]0;pwned\x07\x1b[31m.py"
    table = render(tables.screen_table(rank_screen([result(hostile, (0.5,))])))
    assert "\x1b" not in table and "\x07" not in table
    assert "\\x1b" in table and "\\x07" in table  # shown, escaped, for the user to see


@pytest.mark.parametrize("kind", ["screen", "compare"])
def test_a_study_stopped_before_any_run_finished_says_so_instead_of_an_empty_table(kind, tmp_path):
    from alrao_cli.report.console import print_report

    study = StudyResult(kind=kind, config={}, runs=(), started="2026-01-01T00:00:00", interrupted=True)
    out = Console(file=io.StringIO(), width=120)
    print_report(study, tmp_path, "table", out)
    assert out.file.getvalue() == f"No run of this {kind} has finished yet: nothing to rank.\n"
    out = Console(file=io.StringIO(), width=120)
    print_report(study, tmp_path, "json", out)
    assert isinstance(json.loads(out.file.getvalue()), dict)  # the machine-readable output keeps its shape


def _saved_screen(run_dir: Path, runs: list[RunResult], *, interrupted: bool, killed: bool = False) -> Path:
    from alrao_cli.results.records import save_study

    run_dir.mkdir()
    study = StudyResult(
        kind="screen", config={"archs": sorted({run.arch for run in runs})}, runs=tuple(runs),
        started="2026-01-01T00:00:00", finished=None if interrupted or killed else "2026-01-01T01:00:00",
        interrupted=interrupted,
    )
    save_study(run_dir, study)
    return run_dir


def test_the_report_of_an_interrupted_screen_says_it_is_partial_and_how_to_resume(tmp_path) -> None:
    from support import invoke

    run_dir = _saved_screen(tmp_path / "my run", [result("mlp", (0.5, 0.4)), result("cnn1d", (0.3,))], interrupted=True)
    table = invoke("report", str(run_dir))
    assert table.exit_code == 0, table.output
    assert "mlp" in table.stdout and "cnn1d" in table.stdout and "interrupted" not in table.stdout
    assert table.stderr.splitlines() == [f"interrupted: 2 run(s) finished; resume with: alrao screen --resume '{run_dir}'"]
    as_json = invoke("report", str(run_dir), "--format", "json")
    assert json.loads(as_json.stdout)["interrupted"] is True  # stdout stays pure JSON
    assert as_json.stderr.startswith("interrupted: 2 run(s) finished")


def test_the_report_of_a_killed_screen_says_it_never_saved_its_end(tmp_path) -> None:
    from support import invoke

    run_dir = _saved_screen(tmp_path / "run", [result("mlp", (0.5, 0.4))], interrupted=False, killed=True)
    table = invoke("report", str(run_dir))
    assert table.exit_code == 0 and "mlp" in table.stdout
    assert table.stderr.splitlines() == [
        "unfinished: it never saved its end (killed, or still running); 1 run(s) finished; "
        f"resume with: alrao screen --resume {run_dir}"
    ]


def test_the_report_of_a_finished_screen_says_nothing_more(tmp_path) -> None:
    from support import invoke

    run_dir = _saved_screen(tmp_path / "run", [result("mlp", (0.5, 0.4))], interrupted=False)
    table = invoke("report", str(run_dir))
    assert table.exit_code == 0 and table.stderr == ""
    assert json.loads(invoke("report", str(run_dir), "--format", "json").stdout)["interrupted"] is False


def two_seed_screen() -> list[RunResult]:
    """b and a within noise of each other (their seeds disagree on which is better), c well behind."""
    losses = {"a": (0.30, 0.32), "b": (0.31, 0.30), "c": (0.90, 0.95)}
    return [result(arch, (loss,), seed=seed) for arch, pair in losses.items() for seed, loss in enumerate(pair)]


def test_markdown_of_a_two_seed_screen_keeps_the_noise_marks_and_sentences(tmp_path) -> None:
    from support import invoke

    run_dir = _saved_screen(tmp_path / "run", two_seed_screen(), interrupted=False)
    done = invoke("report", str(run_dir), "--format", "markdown")
    assert done.exit_code == 0, done.output
    lines = done.stdout.splitlines()
    rows = [line for line in lines if line.startswith("| ") and "architecture" not in line]
    assert [row.split(" | ")[:2] for row in rows] == [["| 1", "b"], ["| 2≈", "a"], ["| 3", "c"]]
    # a: paired differences (-0.01, +0.02) over the two seeds: the t interval spans 0
    notes = lines[len(rows) + 2:]
    assert notes[0] == ""
    said = [line for line in notes if line]
    assert said[0] == "≈ not separable from the row above:"
    (pair,) = said[1:]
    assert pair.startswith("b and a: not separable at this budget (difference +0.005, 95 % interval")
    terminal = render(tables.screen_table(rank_screen(two_seed_screen()), noise=_noise(two_seed_screen())))
    assert "2≈" in terminal and pair[:40] in terminal  # the same marks and words as the table


def _noise(runs):
    from alrao_cli.results.separability import screen_separability

    return screen_separability(runs, ("alrao",))


def test_markdown_of_a_one_seed_screen_is_the_table_alone() -> None:
    ranked = rank_screen(screen_runs())
    assert exports.to_markdown(ranked, _noise(screen_runs())) == exports.to_markdown(ranked)
    assert "≈" not in exports.to_markdown(ranked)
