"""`alrao compare` (and `screen --baseline`) end to end, in-process through Typer's runner.

Four tiny studies are trained once per module and shared by the tests that read them:
a one-seed compare with plots (tables, PNGs), the same with --quiet (`alrao report` in
every format), a two-seed compare printing JSON without Adam (schema, gap, best rate,
rank agreement, seed means), and a screen with the SGD-grid and Adam baseline columns. Every number the tool prints
is recomputed here from the raw per-epoch histories in ``results.json``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import statistics
import sys

import pytest
import torch
from typer.testing import CliRunner

from alrao_cli.cli.app import main
from alrao_cli.report import plots
from alrao_cli.results.ranking import kendall_tau
from alrao_cli.results.records import load_study

from support import invoke, load_results

runner = CliRunner()
STATS_KEYS = {"val_loss", "val_acc", "status", "val_loss_std", "val_acc_std"}
ARCHS = ["mlp", "cnn1d"]
GRID = "1e-3:1:3"  # 1e-3, 10**-1.5, 1
GRID_RATES = [1e-3, 10**-1.5, 1.0]


def best_val_loss(run: dict) -> float:
    """The lowest finite validation loss over a run's epochs, from the raw history."""
    return min(record["val_loss"] for record in run["history"] if record["val_loss"] is not None)


def raw_runs(results: dict, arch: str, method: str, lr: float | None = None, seed: int | None = None) -> list[dict]:
    return [
        run for run in results["runs"]
        if run["arch"] == arch and run["method"] == method
        and (lr is None or math.isclose(run["lr"], lr, rel_tol=1e-9))
        and (seed is None or run["seed"] == seed)
    ]


def raw_mean_loss(results: dict, arch: str, method: str, lr: float | None = None) -> float:
    """A method's loss as a compare reports it: the mean over seeds of each seed's best."""
    runs = raw_runs(results, arch, method, lr)
    assert runs, (arch, method, lr)
    return statistics.fmean(best_val_loss(run) for run in runs)


def sgd_entry(entry: dict, lr: float) -> dict:
    """The ``sgd`` entry of a rate; keys are short texts of the rate, so match by value."""
    matches = [stats for key, stats in entry["sgd"].items() if math.isclose(float(key), lr, rel_tol=1e-5)]
    assert len(matches) == 1, (lr, list(entry["sgd"]))
    return matches[0]


def hand_kendall_tau_b(xs: list[float], ys: list[float]) -> float | None:
    """Tau-b written out: (C - D) / sqrt((n0 - ties in x) * (n0 - ties in y))."""
    concordant = discordant = ties_x = ties_y = 0
    n = len(xs)
    for i in range(n):
        for j in range(i + 1, n):
            sx = (xs[i] > xs[j]) - (xs[i] < xs[j])
            sy = (ys[i] > ys[j]) - (ys[i] < ys[j])
            ties_x += sx == 0
            ties_y += sy == 0
            concordant += sx * sy == 1
            discordant += sx * sy == -1
    n0 = n * (n - 1) // 2
    denominator = math.sqrt((n0 - ties_x) * (n0 - ties_y))
    return None if denominator == 0 else (concordant - discordant) / denominator


def hand_spearman_rho(xs: list[float], ys: list[float]) -> float | None:
    """Without ties: 1 - 6 sum d^2 / (n (n^2 - 1))."""
    n = len(xs)
    if n < 2:
        return None
    rank_x = {index: rank for rank, index in enumerate(sorted(range(n), key=xs.__getitem__))}
    rank_y = {index: rank for rank, index in enumerate(sorted(range(n), key=ys.__getitem__))}
    squared = sum((rank_x[i] - rank_y[i]) ** 2 for i in range(n))
    return 1 - 6 * squared / (n * (n * n - 1))


def table_rows(text: str, first_cell: str) -> list[list[str]]:
    """The body rows of rich box tables whose first cell starts with ``first_cell``."""
    rows = []
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("│").split("│")]
        if line.lstrip().startswith("│") and cells[0].startswith(first_cell):
            rows.append(cells)
    return rows


def arch_sections(stdout: str) -> dict[str, str]:
    """Each architecture's table, from its title line to the next table's title."""
    titles = [(match.start(), match.group(1)) for match in re.finditer(r"^(\S+): Alrao against single-rate training", stdout, re.M)]
    ending = stdout.index("Does Alrao rank architectures as tuned SGD does?")
    bounds = [start for start, _ in titles[1:]] + [ending]
    return {arch: stdout[start:end] for (start, arch), end in zip(titles, bounds)}


# -- the studies, trained once per module ------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These models are tiny: one thread is as fast, and far faster when the cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def one_seed(tmp_path_factory, isolated_cache):
    """compare mlp cnn1d, one seed, with Adam and plots (the defaults), with its progress."""
    out = tmp_path_factory.mktemp("compare") / "run"
    result = invoke("compare", *ARCHS, "--grid", GRID, "--subset", "256", "--epochs", "2", "--out", str(out))
    assert result.exit_code == 0, result.output
    return out, result


@pytest.fixture(scope="module")
def quiet(tmp_path_factory, isolated_cache):
    """The same compare with --quiet: only the final tables."""
    out = tmp_path_factory.mktemp("compare-quiet") / "run"
    result = invoke(
        "compare", *ARCHS, "--grid", GRID, "--subset", "256", "--epochs", "2", "--no-plots", "--quiet", "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    return out, result


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory, isolated_cache):
    """compare mlp cnn1d, two seeds, no Adam, no plots, printing JSON."""
    out = tmp_path_factory.mktemp("compare-json") / "run"
    result = invoke(
        "compare", *ARCHS, "--grid", GRID, "--subset", "256", "--epochs", "1", "--seeds", "2",
        "--no-adam", "--no-plots", "--json", "--out", str(out),
    )
    assert result.exit_code == 0, result.output
    return out, result


@pytest.fixture(scope="module")
def screened(tmp_path_factory, isolated_cache):
    out = tmp_path_factory.mktemp("screen-baselines") / "run"
    result = invoke(
        "screen", "mlp", "--baseline", "sgd-grid", "--baseline", "adam", "--grid", "1e-2,1e-1",
        "--subset", "256", "--epochs", "1", "--out", str(out),
    )
    assert result.exit_code == 0, result.output
    return out, result


# -- compare: the tables ------------------------------------------------------------------
def test_compare_prints_one_method_table_per_architecture(one_seed):
    out, result = one_seed
    raw = load_results(out)
    sections = arch_sections(result.stdout)
    assert list(sections) == ARCHS
    for arch, section in sections.items():
        methods = [row[0] for row in table_rows(section, "")]
        methods = [name for name in methods if name.startswith(("alrao", "sgd", "adam"))]
        assert methods == ["alrao", "sgd lr=1.0e-03", "sgd lr=3.2e-02", "sgd lr=1.0e+00", "adam lr=1.0e-03"]
        # The losses shown are the raw best validation losses, to 4 decimals.
        losses = {row[0]: row[1] for row in table_rows(section, "") if row[0] in methods}
        assert losses["alrao"] == f"{raw_mean_loss(raw, arch, 'alrao'):.4f}"
        assert losses["adam lr=1.0e-03"] == f"{raw_mean_loss(raw, arch, 'adam'):.4f}"
        sgd = {lr: raw_mean_loss(raw, arch, "sgd", lr) for lr in GRID_RATES}
        for lr, label in zip(GRID_RATES, methods[1:4]):
            assert losses[label] == f"{sgd[lr]:.4f}"


def test_compare_marks_the_best_sgd_rate_and_shows_alraos_gap(one_seed):
    out, result = one_seed
    raw = load_results(out)
    for arch, section in arch_sections(result.stdout).items():
        sgd = {lr: raw_mean_loss(raw, arch, "sgd", lr) for lr in GRID_RATES}
        best = min(sgd, key=sgd.get)
        starred = [row for row in table_rows(section, "sgd") if "★" in row[-1]]
        assert len(starred) == 1 and starred[0][0] == f"sgd lr={best:.1e}"
        (alrao_row,) = table_rows(section, "alrao")
        gap = raw_mean_loss(raw, arch, "alrao") / sgd[best] - 1
        assert f"gap {100 * gap:+.1f}% vs best SGD" in alrao_row[-1]
        assert re.search(r"suggests lr \d\.\de[+-]\d\d", alrao_row[-1])


def test_compare_prints_the_ranking_table_with_tau_rho_and_time(one_seed):
    out, result = one_seed
    raw = load_results(out)
    ranking = result.stdout[result.stdout.index("Does Alrao rank architectures as tuned SGD does?"):]
    alrao = [raw_mean_loss(raw, arch, "alrao") for arch in ARCHS]
    best_sgd = [min(raw_mean_loss(raw, arch, "sgd", lr) for lr in GRID_RATES) for arch in ARCHS]
    tau, rho = hand_kendall_tau_b(alrao, best_sgd), hand_spearman_rho(alrao, best_sgd)
    assert f"Kendall tau = {tau:.3f}, Spearman rho = {rho:.3f}" in ranking
    rows = {row[0]: row for row in table_rows(ranking, "") if row[0] in ARCHS}
    assert set(rows) == set(ARCHS)
    for index, arch in enumerate(ARCHS):
        alrao_rank = 1 + sum(other < alrao[index] for other in alrao)
        sgd_rank = 1 + sum(other < best_sgd[index] for other in best_sgd)
        assert rows[arch][1:5] == [str(alrao_rank), str(sgd_rank), f"{alrao[index]:.4f}", f"{best_sgd[index]:.4f}"]
    match = re.search(r"time: Alrao (\d+\.\d)s, SGD grid (\d+\.\d)s \(grid/Alrao = (\d+\.\d)x\)", ranking)
    assert match, ranking
    alrao_seconds = sum(run["seconds"] for run in raw["runs"] if run["method"] == "alrao")
    grid_seconds = sum(run["seconds"] for run in raw["runs"] if run["method"] == "sgd")
    assert match.group(1) == f"{alrao_seconds:.1f}" and match.group(2) == f"{grid_seconds:.1f}"


def test_compare_writes_non_empty_png_plots(one_seed):
    out, _ = one_seed
    expected = [f"curves-{arch}.png" for arch in ARCHS] + [f"posterior-{arch}.png" for arch in ARCHS] + ["ranking.png"]
    for name in expected:
        path = out / name
        assert path.is_file(), name
        assert path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_the_curves_drawn_are_every_run_of_the_compare(one_seed):
    """What the PNGs hold: one curve per run (train and validation), each run in the legend."""
    out, _ = one_seed
    raw = load_results(out)
    figures = plots.learning_curve_figures(load_study(out))
    assert list(figures) == ARCHS
    for arch, figure in figures.items():
        train_axes, val_axes = figure.axes
        labels = [text.get_text() for text in val_axes.get_legend().get_texts()]
        assert [label.split(" (")[0] for label in labels] == [
            "alrao", "sgd lr=1.0e-03", "sgd lr=3.2e-02", "sgd lr=1.0e+00", "adam lr=1.0e-03"
        ]
        (alrao,) = raw_runs(raw, arch, "alrao")
        curve = next(line for line in val_axes.get_lines() if line.get_label() == "alrao")
        assert list(curve.get_ydata()) == pytest.approx([record["val_loss"] for record in alrao["history"]])
        assert len(train_axes.get_lines()) == len(val_axes.get_lines()) == 5


# -- compare: JSON ------------------------------------------------------------------------
def test_compare_json_is_only_json_with_the_documented_schema(two_seeds):
    out, result = two_seeds
    payload = json.loads(result.stdout)  # nothing but JSON on stdout
    assert set(payload) == {"run_dir", "interrupted", "architectures", "kendall_tau", "spearman_rho", "seconds"}
    assert payload["interrupted"] is False
    assert payload["run_dir"] == str(out)
    assert [entry["arch"] for entry in payload["architectures"]] == ARCHS
    for entry in payload["architectures"]:
        assert {"arch", "alrao", "sgd", "adam", "best_sgd_lr", "gap"} <= set(entry)
        assert set(entry["alrao"]) == STATS_KEYS
        assert entry["alrao"]["status"] == "ok" and 0 <= entry["alrao"]["val_acc"] <= 1
        assert len(entry["sgd"]) == 3
        assert sorted(float(key) for key in entry["sgd"]) == pytest.approx(GRID_RATES, rel=1e-5)
        for stats in entry["sgd"].values():
            assert set(stats) == STATS_KEYS
        assert entry["adam"] is None  # --no-adam
    assert set(payload["seconds"]) == {"alrao", "grid"}
    assert payload["seconds"]["alrao"] > 0 and payload["seconds"]["grid"] > 0


def test_compare_json_best_rate_and_gap_follow_from_the_json_itself(two_seeds):
    _, result = two_seeds
    for entry in json.loads(result.stdout)["architectures"]:
        healthy = {float(key): stats["val_loss"] for key, stats in entry["sgd"].items() if stats["status"] == "ok"}
        best = min(healthy, key=healthy.get)
        assert entry["best_sgd_lr"] == pytest.approx(best, rel=1e-5)
        expected_gap = entry["alrao"]["val_loss"] / sgd_entry(entry, entry["best_sgd_lr"])["val_loss"] - 1
        assert entry["gap"] == pytest.approx(expected_gap, rel=1e-9, abs=1e-12)


def test_compare_json_rank_agreement_matches_a_hand_computed_tau(two_seeds):
    _, result = two_seeds
    payload = json.loads(result.stdout)
    both = [
        entry for entry in payload["architectures"]
        if entry["alrao"]["status"] == "ok" and entry["best_sgd_lr"] is not None
    ]
    alrao = [entry["alrao"]["val_loss"] for entry in both]
    best_sgd = [sgd_entry(entry, entry["best_sgd_lr"])["val_loss"] for entry in both]
    assert len(both) == 2
    assert -1 <= payload["kendall_tau"] <= 1 and -1 <= payload["spearman_rho"] <= 1
    assert payload["kendall_tau"] == pytest.approx(hand_kendall_tau_b(alrao, best_sgd))
    assert payload["spearman_rho"] == pytest.approx(hand_spearman_rho(alrao, best_sgd))


def test_compare_json_with_two_seeds_has_per_seed_values_and_their_means(two_seeds):
    out, result = two_seeds
    raw = load_results(out)
    assert len(raw["runs"]) == len(ARCHS) * 2 * (1 + 3)  # two seeds of alrao + three rates, no adam
    for entry in json.loads(result.stdout)["architectures"]:
        arch = entry["arch"]
        seeds = entry["seeds"]
        assert [one["seed"] for one in seeds] == [0, 1]
        for one in seeds:
            (run,) = raw_runs(raw, arch, "alrao", seed=one["seed"])
            assert one["alrao"]["val_loss"] == pytest.approx(best_val_loss(run))
            assert one["adam"] is None and len(one["sgd"]) == 3
        mean = statistics.fmean(one["alrao"]["val_loss"] for one in seeds)
        assert entry["alrao"]["val_loss"] == pytest.approx(mean)
        for key in ("val_loss", "val_acc"):  # the spread over the seeds, as the tables show it
            per_seed_values = [one["alrao"][key] for one in seeds]
            assert entry["alrao"][f"{key}_std"] == pytest.approx(statistics.stdev(per_seed_values))
            assert all(one["alrao"][f"{key}_std"] is None for one in seeds)
        assert entry["alrao"]["val_loss"] == pytest.approx(raw_mean_loss(raw, arch, "alrao"))
        for lr in GRID_RATES:
            per_seed = [sgd_entry(one, lr)["val_loss"] for one in seeds]
            assert sgd_entry(entry, lr)["val_loss"] == pytest.approx(statistics.fmean(per_seed))


# -- report -------------------------------------------------------------------------------
def test_report_redraws_exactly_the_tables_compare_printed(quiet, one_seed):
    out, result = quiet
    assert "seed=0" not in result.stderr and "results in" not in result.stderr  # --quiet: the tables only
    again = invoke("report", str(out))
    assert again.exit_code == 0, again.output
    assert again.stdout == result.stdout
    # Without --quiet the progress goes to stderr: stdout holds the same tables alone.
    out, result = one_seed
    assert "mlp alrao seed=0" in result.stderr and f"results in {out}" in result.stderr
    assert invoke("report", str(out)).stdout == result.stdout


def test_report_json_equals_the_compare_json_payload(two_seeds):
    out, result = two_seeds
    again = invoke("report", str(out), "--format", "json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) == json.loads(result.stdout)


def test_report_json_of_a_run_with_adam(quiet):
    out, _ = quiet
    payload = json.loads(invoke("report", str(out), "--format", "json").stdout)
    raw = load_results(out)
    for entry in payload["architectures"]:
        assert set(entry["adam"]) == STATS_KEYS
        assert entry["adam"]["val_loss"] == pytest.approx(raw_mean_loss(raw, entry["arch"], "adam"))
        assert len(entry["seeds"]) == 1


def test_report_csv_parses_one_row_per_method(quiet):
    out, _ = quiet
    result = invoke("report", str(out), "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    payload = json.loads(invoke("report", str(out), "--format", "json").stdout)
    assert len(rows) == len(ARCHS) * 5
    for entry in payload["architectures"]:
        mine = [row for row in rows if row["arch"] == entry["arch"]]
        assert [row["method"] for row in mine] == ["alrao", "sgd", "sgd", "sgd", "adam"]
        assert [row["best_sgd"] for row in mine].count("True") == 1
        (alrao,) = [row for row in mine if row["method"] == "alrao"]
        assert float(alrao["gap"]) == pytest.approx(entry["gap"])
        assert float(alrao["val_loss"]) == pytest.approx(entry["alrao"]["val_loss"])


def test_report_markdown_has_a_pipe_header_row(quiet):
    out, _ = quiet
    result = invoke("report", str(out), "--format", "markdown")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("| ") and lines[0].endswith(" |") and "method" in lines[0]
    assert re.fullmatch(r"\|(---\|)+", lines[1])
    body = [line for line in lines[2:] if line.startswith("| mlp ") or line.startswith("| cnn1d ")]
    assert len(body) >= len(ARCHS) * 5
    assert "Kendall tau" in result.stdout


# -- screen with baselines ----------------------------------------------------------------
def test_screen_baselines_add_best_sgd_and_adam_columns(screened):
    out, result = screened
    assert "best SGD (lr)" in result.stdout and "Adam" in result.stdout
    raw = load_results(out)
    assert sorted((run["method"], run["lr"]) for run in raw["runs"]) == [
        ("adam", 1e-3), ("alrao", None), ("sgd", 0.01), ("sgd", 0.1)
    ]
    assert all(run["status"] == "ok" for run in raw["runs"])
    sgd = {lr: raw_mean_loss(raw, "mlp", "sgd", lr) for lr in (0.01, 0.1)}
    best = min(sgd, key=sgd.get)
    (row,) = table_rows(result.stdout, "1")
    assert row[-2] == f"{sgd[best]:.4f} ({best:.1e})"
    assert row[-1] == f"{raw_mean_loss(raw, 'mlp', 'adam'):.4f}"


def test_screen_baselines_reach_json_csv_and_markdown(screened):
    out, _ = screened
    raw = load_results(out)
    sgd = {lr: raw_mean_loss(raw, "mlp", "sgd", lr) for lr in (0.01, 0.1)}
    best = min(sgd, key=sgd.get)
    alrao, adam = raw_mean_loss(raw, "mlp", "alrao"), raw_mean_loss(raw, "mlp", "adam")

    (entry,) = json.loads(invoke("report", str(out), "--format", "json").stdout)["ranking"]
    assert entry["best_sgd_lr"] == best and entry["best_sgd_val_loss"] == pytest.approx(sgd[best])
    assert entry["adam_val_loss"] == pytest.approx(adam)
    assert entry["gap"] == pytest.approx(alrao / sgd[best] - 1)
    (row,) = csv.DictReader(io.StringIO(invoke("report", str(out), "--format", "csv").stdout))
    assert float(row["best_sgd_lr"]) == best and float(row["adam_val_loss"]) == pytest.approx(adam)
    markdown = invoke("report", str(out), "--format", "markdown").stdout
    assert f"| {sgd[best]:.4f} ({best:.1e}) | {adam:.4f} |" in markdown


@pytest.fixture
def toy_baseline():
    """A baseline registered as a user would add one: one class, no other change anywhere."""
    from alrao_cli.study.methods import METHODS, register_method
    from alrao_cli.study.methods.adam import AdamMethod

    @register_method("toy")
    class Toy(AdamMethod):
        label = "Toy"
        default_lr = 0.01

    yield
    del METHODS["toy"]


def test_only_the_baselines_asked_for_are_shown_and_a_registered_one_just_works(toy_baseline, tmp_path):
    out = tmp_path / "run"
    result = invoke(
        "screen", "mlp", "--baseline", "adam", "--baseline", "toy", "--subset", "256", "--epochs", "1",
        "--no-plots", "--json", "--out", str(out),
    )
    assert result.exit_code == 0, result.output
    raw = load_results(out)
    assert [(run["key"], run["status"]) for run in raw["runs"]] == [
        ("mlp|alrao|seed=0", "ok"), ("mlp|adam|lr=0.001|seed=0", "ok"), ("mlp|toy|lr=0.01|seed=0", "ok"),
    ]
    (entry,) = json.loads(result.stdout)["ranking"]
    assert entry["adam_val_loss"] == pytest.approx(raw_mean_loss(raw, "mlp", "adam"))
    assert entry["toy_val_loss"] == pytest.approx(raw_mean_loss(raw, "mlp", "toy"))
    assert "best_sgd_lr" not in entry and "gap" not in entry  # no SGD grid ran
    table = invoke("report", str(out)).stdout
    assert "Adam" in table and "Toy" in table and "SGD" not in table
    (row,) = table_rows(table, "1")
    assert row[-2:] == [f"{raw_mean_loss(raw, 'mlp', 'adam'):.4f}", f"{raw_mean_loss(raw, 'mlp', 'toy'):.4f}"]


# -- report options -----------------------------------------------------------------------
def test_report_refuses_an_unknown_format_in_one_clear_line(quiet, monkeypatch, capsys):
    out, _ = quiet
    monkeypatch.setattr(sys, "argv", ["alrao", "report", str(out), "--format", "yaml"])
    with pytest.raises(SystemExit) as exited:
        main()  # the console entry point, as a user meets it
    assert exited.value.code == 2
    captured = capsys.readouterr()
    [line] = [line for line in captured.err.splitlines() if line.strip()]
    assert line.startswith("error:") and "'yaml' is not one of 'table', 'json', 'csv', 'markdown'" in line
    assert captured.out == ""


def test_report_draws_the_plots_elsewhere_for_a_read_only_run(quiet, tmp_path):
    out, _ = quiet  # run with --no-plots
    elsewhere = tmp_path / "plots"
    result = invoke("report", str(out), "--plots-dir", str(elsewhere))
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in elsewhere.iterdir()) == sorted(
        [f"curves-{arch}.png" for arch in ARCHS] + [f"posterior-{arch}.png" for arch in ARCHS] + ["ranking.png"]
    )
    assert not list(out.glob("*.png"))


# -- ranking ------------------------------------------------------------------------------
def test_kendall_tau_with_ties_on_both_sides():
    # Pairs: (0,1) discordant; (0,2), (0,3), (1,3) concordant; (1,2) tied in x; (2,3) tied in y.
    # tau-b = (3 - 1) / sqrt((6 - 1) * (6 - 1)) = 0.4
    xs, ys = [1.0, 2.0, 2.0, 3.0], [2.0, 1.0, 3.0, 3.0]
    assert kendall_tau(xs, ys) == pytest.approx(0.4)
    assert hand_kendall_tau_b(xs, ys) == pytest.approx(0.4)
