"""Reports: tables render the numbers, JSON is strict and exactly shaped, plots are written."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest
from rich.console import Console

from alrao_cli import report
from alrao_cli.errors import AlraoUserError
from alrao_cli.ranking import compare_architectures, rank_screen
from alrao_cli.results import EpochRecord, RunResult, StudyResult

NAN = math.nan
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
COPY_LRS = (1e-4, 1e-3, 1e-2, 1e-1)


def result(arch: str, losses: tuple[float, ...] = (), *, method: str = "alrao", lr: float | None = None,
           seed: int = 0, status: str = "ok", reason: str | None = None, acc: float | None = 0.5) -> RunResult:
    alrao = method == "alrao"
    history = tuple(
        EpochRecord(
            epoch=i, step=10 * i, train_loss=loss + 0.1, train_acc=None, val_loss=loss, val_acc=acc,
            seconds=float(i), posterior=(0.1, 0.2, 0.6, 0.1) if alrao else None,
        )
        for i, loss in enumerate(losses, start=1)
    )
    rate = "" if lr is None else f"|lr={lr:g}"
    return RunResult(
        key=f"{arch}|{method}{rate}|seed={seed}", arch=arch, method=method, lr=lr, seed=seed,
        status=status, reason=reason, params=12345, seconds=2.5, history=history,
        copy_lrs=COPY_LRS if alrao else None,
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
    assert report.sparkline(values) == expected


@pytest.mark.parametrize(
    ("lr", "shown", "key"),
    [
        (0.032, "3.2e-02", "0.032"), (1e-5, "1.0e-05", "1e-05"), (1.0, "1.0e+00", "1"), (0.1, "1.0e-01", "0.1"),
        (0.0316227766017, "3.2e-02", "0.0316227766017"),
    ],
)
def test_rate_formats(lr, shown, key) -> None:
    assert report.format_lr(lr) == shown
    assert report.lr_key(lr) == key
    assert float(key) == lr  # a JSON key gives the rate back exactly


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(2.54, "2.5s"), (59.9, "59.9s"), (61, "1m01s"), (3599, "59m59s"), (3600 + 125, "1h02m"), (NAN, "—")],
)
def test_format_seconds(seconds, shown) -> None:
    assert report.format_seconds(seconds) == shown


def test_screen_table_shows_every_architecture_and_the_reasons() -> None:
    text = render(report.screen_table(rank_screen(screen_runs())))
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
    text = render(report.screen_table(rank_screen(runs), compare_architectures(runs)))
    mlp_line = next(line for line in text.splitlines() if "mlp" in line)
    assert "best SGD" in text and "Adam" in text
    assert "0.3100 (1.0e-01)" in mlp_line  # mean over the seeds at the best rate
    assert "0.3700" in mlp_line  # Adam


def test_compare_tables_render_methods_marks_and_correlations() -> None:
    summary = compare_architectures(compare_runs())
    tables = report.compare_tables(summary)
    assert len(tables) == 3  # two architectures, then the ranking
    mlp = render(tables[0])
    assert "sgd lr=1.0e-01" in mlp and "★ best SGD rate" in mlp.split("sgd lr=1.0e-01")[1].splitlines()[0]
    assert "0.3400 ± 0.0141" in mlp  # Alrao's mean ± std over two seeds
    assert f"gap {100 * (0.34 / 0.31 - 1):+.1f}%" in mlp
    assert "diverged" in mlp and "loss became nan" in mlp
    assert "adam lr=1.0e-03" in mlp
    ranking = render(tables[2])
    assert "Kendall tau = -1.000" in ranking and "Spearman rho = -1.000" in ranking
    assert "grid/Alrao = 2.5x" in ranking


def test_screen_json_is_exactly_shaped_and_strict() -> None:
    data = report.screen_json("runs/x", rank_screen(screen_runs()))
    json.dumps(data, allow_nan=False)
    assert set(data) == {"run_dir", "ranking"} and data["run_dir"] == "runs/x"
    keys = {"rank", "arch", "status", "val_loss", "val_acc", "epoch", "lr_selected", "params", "seconds", "reason"}
    assert all(set(entry) == keys for entry in data["ranking"])
    first, *_, last = data["ranking"]
    assert first == {
        "rank": 1, "arch": "cnn1d", "status": "ok", "val_loss": 0.3, "val_acc": 0.5, "epoch": 2,
        "lr_selected": 1e-2, "params": 12345, "seconds": 2.5, "reason": None,
    }
    assert (last["arch"], last["status"], last["val_loss"], last["epoch"]) == ("broken.py:Net", "failed", None, None)


def test_compare_json_is_exactly_shaped_and_strict() -> None:
    data = report.compare_json(Path("runs/c"), compare_architectures(compare_runs()))
    json.dumps(data, allow_nan=False)
    assert set(data) == {"run_dir", "architectures", "kendall_tau", "spearman_rho", "seconds"}
    assert data["seconds"] == {"alrao": 10.0, "grid": 25.0}
    mlp = data["architectures"][0]
    assert set(mlp) == {"arch", "alrao", "sgd", "adam", "best_sgd_lr", "gap", "seeds"}
    assert list(mlp["sgd"]) == ["1e-05", "0.1", "1"]
    assert mlp["sgd"]["1"] == {"val_loss": 5.0, "val_acc": 0.5, "status": "diverged"}
    assert mlp["alrao"]["val_loss"] == pytest.approx(0.34) and mlp["alrao"]["status"] == "ok"
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
    data = report.compare_json("d", compare_architectures(runs))
    json.dumps(data, allow_nan=False)
    assert data["architectures"][0]["sgd"]["0.1"] == {"val_loss": None, "val_acc": None, "status": "diverged"}
    assert data["seconds"]["grid"] == 0.0


def test_screen_csv_and_markdown() -> None:
    ranked = rank_screen(screen_runs())
    rows = list(csv.DictReader(io.StringIO(report.to_csv(ranked))))
    assert [row["arch"] for row in rows] == ["cnn1d", "mlp", "vgg", "broken.py:Net"]
    assert float(rows[0]["val_loss"]) == 0.3 and rows[0]["reason"] == ""
    assert rows[3]["val_loss"] == "" and rows[3]["status"] == "failed"

    markdown = report.to_markdown(ranked).splitlines()
    assert len(markdown) == 2 + len(ranked)
    assert markdown[1].startswith("|---|")
    assert all(line.startswith("| ") and line.endswith(" |") for line in markdown[2:])
    assert "| 1 | cnn1d | 12,345 | 0.3000 |" in markdown[2]


def test_markdown_escapes_pipes_in_reasons() -> None:
    ranked = rank_screen([result("mlp", status="failed", reason="shape a|b mismatch")])
    assert "shape a\\|b mismatch" in report.to_markdown(ranked)


def test_compare_csv_and_markdown() -> None:
    summary = compare_architectures(compare_runs())
    rows = list(csv.DictReader(io.StringIO(report.compare_to_csv(summary))))
    mlp = [row for row in rows if row["arch"] == "mlp"]
    assert [row["method"] for row in mlp] == ["alrao", "sgd", "sgd", "sgd", "adam"]
    assert [row["best_sgd"] for row in mlp] == ["False", "False", "True", "False", "False"]
    assert float(mlp[0]["gap"]) == pytest.approx(0.34 / 0.31 - 1) and mlp[1]["gap"] == ""

    markdown = report.compare_to_markdown(summary)
    assert "| mlp | sgd lr=1.0e-01 | 0.3100 ± 0.0141 |" in markdown
    assert "| cnn1d | 2 | 1 |" in markdown  # Alrao ranks cnn1d second, SGD first
    assert "Kendall tau = -1.000" in markdown


def test_plots_are_written_with_their_names(tmp_path: Path) -> None:
    runs = compare_runs() + [result("zoo/odd name:Net", (0.5, 0.4))]
    study = StudyResult(kind="compare", config={}, runs=tuple(runs), started="2026-01-01T00:00:00")
    out = tmp_path / "plots"

    curves = report.plot_learning_curves(study, out)
    posterior = report.plot_posterior(study, out)
    ranking = report.plot_rank_comparison(compare_architectures(runs), out)

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
    assert report.plot_posterior(study, tmp_path) == []
    assert report.plot_rank_comparison(compare_architectures(runs), tmp_path) == []
    assert [path.name for path in report.plot_learning_curves(study, tmp_path)] == ["curves-cnn1d.png"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["curves-cnn1d.png"]


def test_distinct_architectures_never_share_a_plot_file(tmp_path: Path) -> None:
    runs = (result("a/b", (0.3,)), result("a:b", (0.4,)))
    study = StudyResult(kind="screen", config={}, runs=runs, started="2026-01-01T00:00:00")
    assert [path.name for path in report.plot_learning_curves(study, tmp_path)] == ["curves-a_b.png", "curves-a_b-2.png"]


def test_an_unwritable_plot_folder_is_a_user_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    study = StudyResult(kind="screen", config={}, runs=(result("mlp", (0.3,)),), started="2026-01-01T00:00:00")
    with pytest.raises(AlraoUserError, match="cannot write the plot"):
        report.plot_learning_curves(study, blocker / "plots")
