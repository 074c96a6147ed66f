"""Showing results: rich tables, JSON, CSV, Markdown and plots, from results alone.

Nothing here trains or imports torch, so ``alrao report RUN_DIR`` can redraw a study
from its ``results.json``. Plots use matplotlib's object API (a ``Figure`` rendered by
the Agg canvas) rather than pyplot: no display is needed, no global backend is switched
under a caller that uses pyplot itself, and no figure is left registered to close.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

from alrao_cli.errors import AlraoUserError
from alrao_cli.ranking import ArchComparison, CompareSummary, MethodStats, RankedRun
from alrao_cli.results import RunResult, StudyResult, json_safe

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SPARK_BLOCKS = "▁▂▃▄▅▆▇█"
MISSING = "—"

SCREEN_CSV_COLUMNS = (
    "rank", "arch", "status", "val_loss", "val_loss_std", "val_acc", "epoch", "lr_selected",
    "params", "seconds", "reason",
)
COMPARE_CSV_COLUMNS = (
    "arch", "method", "lr", "status", "val_loss", "val_loss_std", "val_acc", "lr_selected",
    "best_sgd", "gap", "seconds", "reason",
)


# -- formatting ---------------------------------------------------------------------------
def sparkline(values: Iterable[float]) -> str:
    """A loss curve in one line of blocks: the lowest loss is the lowest block.

    Non-finite values (a diverged epoch) are a space; a flat curve sits mid-height.
    """
    values = list(values)
    finite = [value for value in values if math.isfinite(value)]
    if not finite:
        return " " * len(values)
    low, high = min(finite), max(finite)
    top = len(SPARK_BLOCKS) - 1

    def block(value: float) -> str:
        if not math.isfinite(value):
            return " "
        if high == low:
            return SPARK_BLOCKS[top // 2]
        return SPARK_BLOCKS[round((value - low) / (high - low) * top)]

    return "".join(block(value) for value in values)


def format_lr(lr: float | None) -> str:
    """A rate as the tables show it, e.g. ``3.2e-02``."""
    return MISSING if lr is None else f"{lr:.1e}"


def lr_key(lr: float) -> str:
    """A rate as a JSON key, e.g. ``0.01`` or ``1e-05``: ``float(key)`` gives the rate back
    (grid rates carry at most 12 significant digits), so keys match ``best_sgd_lr``."""
    return f"{lr:.12g}"


def format_loss(value: float | None, std: float | None = None) -> str:
    if value is None:
        return MISSING
    return f"{value:.4f} ± {std:.4f}" if std is not None else f"{value:.4f}"


def format_acc(value: float | None) -> str:
    return MISSING if value is None else f"{100 * value:.1f}%"


def format_params(count: int | None) -> str:
    return MISSING if count is None else f"{count:,}"


def format_seconds(seconds: float) -> str:
    if not math.isfinite(seconds):
        return MISSING
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_gap(value: float | None) -> str:
    return MISSING if value is None else f"{100 * value:+.1f}%"


def _status_note(status: str, reason: str | None) -> str:
    return status if reason is None else f"{status}: {reason}"


# -- screen -------------------------------------------------------------------------------
def screen_table(ranked: list[RankedRun], baselines: CompareSummary | None = None) -> Table:
    """The screen's ranking; with ``baselines``, each architecture's best SGD and Adam too.

    Failed and diverged rows are dim; their reasons go under the table, where long error
    messages get the full width instead of squeezing every column.
    """
    reasons = [
        f"{entry.rank}. {entry.arch}: {_status_note(entry.status, entry.reason)}"
        for entry in ranked
        if entry.status != "ok"
    ]
    table = Table(
        title="Ranked by best validation loss, Alrao (no rate tuned); "
        "lr = rate of the output copy the switch favours",
        title_justify="left",
        caption=Text("\n".join(reasons), style="dim") if reasons else None,
        caption_justify="left",
    )
    table.add_column("#", justify="right")
    table.add_column("architecture", overflow="fold", min_width=12)  # folds long names, never cuts them
    for name in ("params", "val loss", "acc", "epoch", "lr", "time"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("curve", no_wrap=True)
    if baselines is not None:
        table.add_column("best SGD (lr)", justify="right")
        table.add_column("Adam", justify="right")
    if reasons:
        table.add_column("status")
    for entry in ranked:
        cells: list[str | Text] = [
            str(entry.rank),
            Text(entry.arch),
            format_params(entry.params),
            format_loss(entry.val_loss, entry.val_loss_std),
            format_acc(entry.val_acc),
            MISSING if entry.epoch is None else str(entry.epoch),
            format_lr(entry.lr_selected),
            format_seconds(entry.seconds),
            sparkline(entry.curve),
        ]
        if baselines is not None:
            cells += _baseline_cells(baselines.comparison(entry.arch))
        if reasons:
            cells.append(entry.status)
        table.add_row(*cells, style="dim" if entry.status != "ok" else None)
    return table


def _baseline_cells(comparison: ArchComparison | None) -> list[str]:
    if comparison is None:
        return [MISSING, MISSING]
    best = comparison.best_sgd
    sgd = MISSING if best is None else f"{format_loss(best.val_loss)} ({format_lr(best.lr)})"
    adam = comparison.adam
    adam_cell = MISSING if adam is None else (
        format_loss(adam.val_loss) if adam.status == "ok" else adam.status
    )
    return [sgd, adam_cell]


def screen_json(run_dir: str | Path, ranked: list[RankedRun]) -> dict[str, Any]:
    """The ranking as strict JSON data (non-finite numbers as null)."""
    return json_safe({
        "run_dir": str(run_dir),
        "ranking": [
            {
                "rank": entry.rank,
                "arch": entry.arch,
                "status": entry.status,
                "val_loss": entry.val_loss,
                "val_acc": entry.val_acc,
                "epoch": entry.epoch,
                "lr_selected": entry.lr_selected,
                "params": entry.params,
                "seconds": entry.seconds,
                "reason": entry.reason,
            }
            for entry in ranked
        ],
    })


def to_csv(ranked: list[RankedRun]) -> str:
    return _csv(
        SCREEN_CSV_COLUMNS,
        (
            (entry.rank, entry.arch, entry.status, entry.val_loss, entry.val_loss_std, entry.val_acc,
             entry.epoch, entry.lr_selected, entry.params, entry.seconds, entry.reason)
            for entry in ranked
        ),
    )


def to_markdown(ranked: list[RankedRun]) -> str:
    header = (
        "rank", "architecture", "params", "best val loss", "acc", "epoch", "lr selected", "time", "status"
    )
    rows = [
        (
            str(entry.rank), entry.arch, format_params(entry.params),
            format_loss(entry.val_loss, entry.val_loss_std), format_acc(entry.val_acc),
            MISSING if entry.epoch is None else str(entry.epoch), format_lr(entry.lr_selected),
            format_seconds(entry.seconds), _status_note(entry.status, entry.reason),
        )
        for entry in ranked
    ]
    return _markdown_table(header, rows)


# -- compare ------------------------------------------------------------------------------
def compare_tables(summary: CompareSummary) -> list[Table]:
    """One table per architecture (its methods), then the two rankings side by side."""
    return [_arch_table(entry) for entry in summary.architectures] + [_ranking_table(summary)]


def _method_rows(entry: ArchComparison) -> list[tuple[str, MethodStats]]:
    """The rows of one architecture: Alrao, the SGD grid by rate, then Adam."""
    rows = [("alrao", entry.alrao)] if entry.alrao is not None else []
    rows += [(f"sgd lr={format_lr(stats.lr)}", stats) for stats in entry.sgd]
    if entry.adam is not None:
        rows.append((f"adam lr={format_lr(entry.adam.lr)}", entry.adam))
    return rows


def _arch_table(entry: ArchComparison) -> Table:
    seeds = len(entry.per_seed)
    title = f"{entry.arch}: Alrao against single-rate training"
    if seeds > 1:
        title += f" (mean ± std over {seeds} seeds)"
    table = Table(title=Text(title), title_justify="left")
    table.add_column("method", overflow="fold")
    for name in ("val loss", "acc"):
        table.add_column(name, justify="right")
    table.add_column("status")
    table.add_column("note")
    for label, stats in _method_rows(entry):
        note = ""
        if stats is entry.alrao:
            note = f"gap {format_gap(entry.gap)} vs best SGD; favours lr {format_lr(stats.lr_selected)}"
        elif stats.method == "sgd" and stats.lr == entry.best_sgd_lr:
            note = "★ best SGD rate"
        if stats.status != "ok" and stats.reason:
            note = stats.reason
        table.add_row(
            label,
            format_loss(stats.val_loss, stats.val_loss_std),
            format_acc(stats.val_acc),
            stats.status,
            Text(note),
            style="dim" if stats.status != "ok" else None,
        )
    return table


def _ranking_table(summary: CompareSummary) -> Table:
    footer = _compare_footer(summary)
    table = Table(
        title="Does Alrao rank architectures as tuned SGD does?",
        title_justify="left",
        caption="\n".join(footer),
        caption_justify="left",
        min_width=_longest(footer, cap=100),  # the caption wraps at the table's width
    )
    table.add_column("architecture", overflow="fold")
    for name in ("Alrao rank", "best-SGD rank", "Alrao val loss", "best-SGD val loss"):
        table.add_column(name, justify="right")
    for pair in summary.ranking:
        table.add_row(
            Text(pair.arch), str(pair.alrao_rank), str(pair.sgd_rank),
            format_loss(pair.alrao_val_loss), format_loss(pair.sgd_val_loss),
        )
    return table


def _compare_footer(summary: CompareSummary) -> tuple[str, str]:
    """How well the two rankings agree, and what each approach cost."""
    if summary.kendall_tau is None or summary.spearman_rho is None:
        agreement = "rank agreement needs 2 architectures with both Alrao and SGD results"
    else:
        agreement = f"Kendall tau = {summary.kendall_tau:.3f}, Spearman rho = {summary.spearman_rho:.3f}"
    seconds = (
        f"time: Alrao {format_seconds(summary.alrao_seconds)}, "
        f"SGD grid {format_seconds(summary.grid_seconds)}"
    )
    if summary.alrao_seconds > 0 and summary.grid_seconds > 0:
        seconds += f" (grid/Alrao = {summary.grid_seconds / summary.alrao_seconds:.1f}x)"
    return agreement, seconds


def _longest(texts: Iterable[str], cap: int) -> int:
    return min(max((len(text) for text in texts), default=0), cap)


def compare_json(run_dir: str | Path, summary: CompareSummary) -> dict[str, Any]:
    """The comparison as strict JSON data: means over seeds, and each seed's own values."""
    return json_safe({
        "run_dir": str(run_dir),
        "architectures": [
            {**_comparison_json(entry), "seeds": [
                {"seed": one.seed, **_comparison_json(one)} for one in entry.per_seed
            ]}
            for entry in summary.architectures
        ],
        "kendall_tau": summary.kendall_tau,
        "spearman_rho": summary.spearman_rho,
        "seconds": {"alrao": summary.alrao_seconds, "grid": summary.grid_seconds},
    })


def _comparison_json(entry: ArchComparison) -> dict[str, Any]:
    return {
        "arch": entry.arch,
        "alrao": _stats_json(entry.alrao),
        "sgd": {lr_key(stats.lr): _stats_json(stats) for stats in entry.sgd if stats.lr is not None},
        "adam": _stats_json(entry.adam),
        "best_sgd_lr": entry.best_sgd_lr,
        "gap": entry.gap,
    }


def _stats_json(stats: MethodStats | None) -> dict[str, Any] | None:
    if stats is None:
        return None
    return {"val_loss": stats.val_loss, "val_acc": stats.val_acc, "status": stats.status}


def compare_to_csv(summary: CompareSummary) -> str:
    """One row per architecture and method (and rate), means over seeds."""
    rows = []
    for entry in summary.architectures:
        for _, stats in _method_rows(entry):
            is_alrao = stats is entry.alrao
            rows.append((
                entry.arch, stats.method, stats.lr, stats.status, stats.val_loss, stats.val_loss_std,
                stats.val_acc, stats.lr_selected,
                stats.method == "sgd" and stats.lr == entry.best_sgd_lr,
                entry.gap if is_alrao else None, stats.seconds, stats.reason,
            ))
    return _csv(COMPARE_CSV_COLUMNS, rows)


def compare_to_markdown(summary: CompareSummary) -> str:
    header = ("architecture", "method", "val loss", "acc", "status", "note")
    rows = []
    for entry in summary.architectures:
        for label, stats in _method_rows(entry):
            note = ""
            if stats is entry.alrao:
                note = f"gap {format_gap(entry.gap)}"
            elif stats.method == "sgd" and stats.lr == entry.best_sgd_lr:
                note = "best SGD rate"
            rows.append((
                entry.arch, label, format_loss(stats.val_loss, stats.val_loss_std),
                format_acc(stats.val_acc), _status_note(stats.status, stats.reason), note,
            ))
    ranking = _markdown_table(
        ("architecture", "Alrao rank", "best-SGD rank"),
        [(pair.arch, str(pair.alrao_rank), str(pair.sgd_rank)) for pair in summary.ranking],
    )
    return f"{_markdown_table(header, rows)}\n{ranking}\n{'; '.join(_compare_footer(summary))}\n"


def _csv(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if value is None else value for value in json_safe(list(row))])
    return buffer.getvalue()


def _markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    def line(cells: Sequence[str]) -> str:
        escaped = (cell.replace("|", "\\|").replace("\n", " ") for cell in cells)
        return "| " + " | ".join(escaped) + " |"

    lines = [line(header), "|" + "|".join("---" for _ in header) + "|"]
    lines += [line(row) for row in rows]
    return "\n".join(lines) + "\n"


# -- plots --------------------------------------------------------------------------------
def plot_learning_curves(study: StudyResult, out_dir: Path) -> list[Path]:
    """Per architecture, training and validation loss per epoch: Alrao against each SGD
    rate and Adam (as in the Alrao paper's Figure 2). The first seed only, for legibility."""
    paths = []
    by_arch = _first_seed_runs(study.runs)
    names = _safe_names(by_arch)
    for arch, runs in by_arch.items():
        runs = sorted((run for run in runs if run.history), key=_method_order)
        if not runs:
            continue
        figure = _figure(width=11, height=4.2)
        train_axes, val_axes = figure.subplots(1, 2, sharex=True)
        colors = _sgd_colors(runs)
        for run in runs:
            epochs = [record.epoch for record in run.history]
            style = _line_style(run, colors)
            train_axes.plot(epochs, _finite([record.train_loss for record in run.history]), **style)
            val_axes.plot(epochs, _finite([record.val_loss for record in run.history]), **style)
        for axes, what in [(train_axes, "training"), (val_axes, "validation")]:
            axes.set_xlabel("epoch")
            axes.set_ylabel(f"{what} loss")
            if _all_positive(axes):
                axes.set_yscale("log")
            axes.grid(alpha=0.3)
        val_axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
        figure.suptitle(f"{arch}: loss per epoch (seed {runs[0].seed})")
        paths.append(_save(figure, out_dir, f"curves-{names[arch]}.png"))
    return paths


def plot_posterior(study: StudyResult, out_dir: Path) -> list[Path]:
    """Per architecture, Alrao's switch posterior over its output copies per epoch, stacked
    (as in the paper's Figure 4): which rates the model trusts as training goes on."""
    paths = []
    by_arch = _first_seed_runs(study.runs)
    names = _safe_names(by_arch)
    for arch, runs in by_arch.items():
        run = next((run for run in runs if run.method == "alrao"), None)
        records = [record for record in run.history if record.posterior] if run is not None else []
        if not records:
            continue
        copies = len(records[0].posterior)
        records = [record for record in records if len(record.posterior) == copies]
        rates = run.copy_lrs if run.copy_lrs is not None and len(run.copy_lrs) == copies else None
        labels = [f"lr {format_lr(lr)}" for lr in rates] if rates else [f"copy {i}" for i in range(copies)]
        weights = [
            [value if math.isfinite(value) else 0.0 for value in (record.posterior[i] for record in records)]
            for i in range(copies)
        ]
        figure = _figure(width=8, height=4.2)
        axes = figure.subplots()
        palette = _palette(copies)
        axes.stackplot([record.epoch for record in records], weights, labels=labels, colors=palette)
        axes.set_xlabel("epoch")
        axes.set_ylabel("switch posterior")
        axes.set_ylim(0, 1)
        handles, legend_labels = axes.get_legend_handles_labels()  # listed top-down, as stacked
        axes.legend(handles[::-1], legend_labels[::-1], fontsize="small", loc="upper left",
                    bbox_to_anchor=(1.02, 1.0), title="copy")
        axes.set_title(f"{arch}: which output copy the switch trusts (seed {run.seed})")
        paths.append(_save(figure, out_dir, f"posterior-{names[arch]}.png"))
    return paths


def plot_rank_comparison(summary: CompareSummary, out_dir: Path) -> list[Path]:
    """Alrao's rank of each architecture against its best-tuned SGD rank: on the diagonal,
    screening with Alrao would have picked what tuning each one would have."""
    if not summary.ranking:
        return []
    figure = _figure(width=6, height=6)
    axes = figure.subplots()
    size = len(summary.ranking)
    axes.plot([0.5, size + 0.5], [0.5, size + 0.5], color="0.7", linestyle="--", linewidth=1)
    axes.scatter([pair.alrao_rank for pair in summary.ranking], [pair.sgd_rank for pair in summary.ranking])
    for pair in summary.ranking:
        axes.annotate(pair.arch, (pair.alrao_rank, pair.sgd_rank), textcoords="offset points",
                      xytext=(5, 5), fontsize="small")
    ranks = range(1, size + 1)
    axes.set_xticks(ranks)
    axes.set_yticks(ranks)
    axes.set_xlim(0.5, size + 0.5)
    axes.set_ylim(0.5, size + 0.5)
    axes.set_xlabel("rank by Alrao (1 = lowest validation loss)")
    axes.set_ylabel("rank by best-tuned SGD")
    tau = MISSING if summary.kendall_tau is None else f"{summary.kendall_tau:.2f}"
    rho = MISSING if summary.spearman_rho is None else f"{summary.spearman_rho:.2f}"
    axes.set_title(f"Kendall tau {tau}, Spearman rho {rho}")
    return [_save(figure, out_dir, "ranking.png")]


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(figure: Figure, out_dir: Path, name: str) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = out_dir / name
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        FigureCanvasAgg(figure).print_png(path)
    except OSError as error:
        raise AlraoUserError(
            f"cannot write the plot {path}: {error.strerror or error}",
            hint="make the folder writable, or turn plots off",
        ) from None
    return path


def _first_seed_runs(runs: Iterable[RunResult]) -> dict[str, list[RunResult]]:
    """Per architecture (in order of appearance), its runs of the lowest seed."""
    by_arch: dict[str, list[RunResult]] = {}
    for run in runs:
        by_arch.setdefault(run.arch, []).append(run)
    lowest = {arch: min(run.seed for run in arch_runs) for arch, arch_runs in by_arch.items()}
    return {
        arch: [run for run in arch_runs if run.seed == lowest[arch]] for arch, arch_runs in by_arch.items()
    }


def _safe_names(archs: Iterable[str]) -> dict[str, str]:
    """File-name-safe, distinct versions of the architecture names."""
    names: dict[str, str] = {}
    for arch in archs:
        base = re.sub(r"[^A-Za-z0-9_.=-]+", "_", arch).strip("_.") or "arch"
        name, suffix = base, 1
        while name in names.values():
            suffix += 1
            name = f"{base}-{suffix}"
        names[arch] = name
    return names


def _method_order(run: RunResult) -> tuple:
    rank = {"alrao": 0, "sgd": 1, "adam": 2}.get(run.method, 3)
    return (rank, run.method, run.lr if run.lr is not None else 0.0)


def _palette(count: int) -> list[tuple[float, float, float, float]]:
    from matplotlib import colormaps

    colormap = colormaps["viridis"]
    return [colormap(i / max(count - 1, 1)) for i in range(count)]


def _sgd_colors(runs: list[RunResult]) -> dict[float | None, Any]:
    rates = sorted({run.lr for run in runs if run.method == "sgd" and run.lr is not None})
    return dict(zip(rates, _palette(len(rates))))


def _line_style(run: RunResult, sgd_colors: dict[float | None, Any]) -> dict[str, Any]:
    label = run.method if run.lr is None else f"{run.method} lr={format_lr(run.lr)}"
    if run.status != "ok":
        label += f" ({run.status})"
    if run.method == "alrao":
        return {"label": label, "color": "black", "linewidth": 2.5}
    if run.method == "sgd":
        return {"label": label, "color": sgd_colors.get(run.lr), "linewidth": 1.2}
    return {"label": label, "color": "tab:red", "linewidth": 1.5, "linestyle": "--"}


def _finite(values: list[float]) -> list[float]:
    """Non-finite losses become gaps in a line instead of wrecking the axis limits."""
    return [value if math.isfinite(value) else math.nan for value in values]


def _all_positive(axes: Any) -> bool:
    values = [y for line in axes.get_lines() for y in line.get_ydata() if math.isfinite(y)]
    return bool(values) and min(values) > 0
