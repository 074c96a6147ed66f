"""Showing results: rich tables, JSON, CSV, Markdown and plots, from results alone.

Nothing here trains, so ``alrao report RUN_DIR`` can redraw a study from its
``results.json``. Baselines are shown as :mod:`alrao_cli.results.ranking` describes them (each
with the label its method declares), so a newly registered baseline gets its rows,
columns and curves without a change here. Plots use matplotlib's object API (a
``Figure`` rendered by the Agg canvas) rather than pyplot: no display is needed, no
global backend is switched under a caller that uses pyplot itself, and no figure is left
registered to close. Each plot is built by a function returning its ``Figure``, so tests
can check what is drawn, not only that a file was written.
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
from alrao_cli.results.ranking import (
    ALRAO,
    REFERENCE,
    ArchComparison,
    BaselineStats,
    CompareSummary,
    MethodStats,
    RankedRun,
    RankPair,
    method_order,
)
from alrao_cli.results.records import RunResult, StudyResult, json_safe

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

SPARK_BLOCKS = "▁▂▃▄▅▆▇█"
MISSING = "—"
LARGE_LOSS = 1e4  # from here on a loss shows 4 significant digits: 6.002e+22, not 23 digits
SCHEMA_BASELINES = ("sgd", "adam")  # the baselines with keys of their own in the compare JSON

SCREEN_CSV_COLUMNS = (
    "rank", "arch", "status", "val_loss", "val_loss_std", "val_acc", "epoch", "lr_selected",
    "params", "seconds", "reason", "val_acc_std",
)
COMPARE_CSV_COLUMNS = (
    "arch", "method", "lr", "status", "val_loss", "val_loss_std", "val_acc", "lr_selected",
    "best_sgd", "gap", "seconds", "reason", "val_acc_std",
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
    """``0.3100 ± 0.0141``; a huge loss (a rate that blew up yet stayed finite) stays short."""
    if value is None:
        return MISSING
    return f"{_loss_number(value)} ± {_loss_number(std)}" if std is not None else _loss_number(value)


def _loss_number(value: float) -> str:
    return f"{value:.4g}" if abs(value) >= LARGE_LOSS else f"{value:.4f}"


def format_acc(value: float | None, std: float | None = None) -> str:
    if value is None:
        return MISSING
    return f"{100 * value:.1f}% ± {100 * std:.1f}%" if std is not None else f"{100 * value:.1f}%"


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


def format_rank(rank: int, ranks: Sequence[int]) -> str:
    """A rank as shown among ``ranks``: one that several entries share reads ``1=``."""
    return f"{rank}=" if ranks.count(rank) > 1 else str(rank)


def _status_note(status: str, reason: str | None) -> str:
    return status if reason is None else f"{status}: {reason}"


# -- screen -------------------------------------------------------------------------------
def _screen_baselines(ranked: list[RankedRun]) -> list[BaselineStats]:
    """The baselines the screen ran, one column each in registration order (each described
    by the first architecture that has it): none asked for, no column."""
    seen: dict[str, BaselineStats] = {}
    for entry in ranked:
        for baseline in entry.baselines:
            seen.setdefault(baseline.method, baseline)
    return sorted(seen.values(), key=lambda baseline: method_order(baseline.method, baseline.tuned_over_grid))


def _baseline_header(baseline: BaselineStats) -> str:
    return f"best {baseline.label} (lr)" if baseline.tuned_over_grid else baseline.label


def _baseline_cell(baseline: BaselineStats | None) -> str:
    """A grid's best rate and its loss, ``0.3100 (1.0e-01)``; a single run's loss, or its status."""
    shown = baseline.shown if baseline is not None else None
    if shown is None:
        return MISSING
    if baseline.tuned_over_grid:
        return f"{format_loss(shown.val_loss)} ({format_lr(shown.lr)})"
    return format_loss(shown.val_loss) if shown.status == "ok" else shown.status


def screen_table(ranked: list[RankedRun]) -> Table:
    """The screen's ranking, with a column per baseline the screen ran (``--baseline``).

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
    columns = _screen_baselines(ranked)
    for baseline in columns:
        table.add_column(_baseline_header(baseline), justify="right")
    if reasons:
        table.add_column("status")
    for entry in ranked:
        cells: list[str | Text] = [
            str(entry.rank),
            Text(entry.arch),
            format_params(entry.params),
            format_loss(entry.val_loss, entry.val_loss_std),
            format_acc(entry.val_acc, entry.val_acc_std),
            MISSING if entry.epoch is None else str(entry.epoch),
            format_lr(entry.lr_selected),
            format_seconds(entry.seconds),
            sparkline(entry.curve),
        ]
        cells += [_baseline_cell(entry.baseline(baseline.method)) for baseline in columns]
        if reasons:
            cells.append(entry.status)
        table.add_row(*cells, style="dim" if entry.status != "ok" else None)
    return table


def _baseline_fields(entry: RankedRun, columns: list[BaselineStats]) -> dict[str, Any]:
    """The flat JSON and CSV fields of each baseline the screen ran: ``best_sgd_lr``,
    ``best_sgd_val_loss`` for a grid, ``adam_val_loss`` for a single run (null unless it
    finished ok), and ``gap`` (to the best SGD rate) when the SGD grid ran."""
    fields: dict[str, Any] = {}
    for column in columns:
        baseline = entry.baseline(column.method)
        shown = baseline.shown if baseline is not None else None
        healthy = shown if shown is not None and shown.status == "ok" else None
        if column.tuned_over_grid:
            fields[f"best_{column.method}_lr"] = healthy.lr if healthy else None
            fields[f"best_{column.method}_val_loss"] = healthy.val_loss if healthy else None
        else:
            fields[f"{column.method}_val_loss"] = healthy.val_loss if healthy else None
    if any(column.method == REFERENCE for column in columns):
        fields["gap"] = entry.gap
    return fields


def screen_json(run_dir: str | Path, ranked: list[RankedRun]) -> dict[str, Any]:
    """The ranking as strict JSON data (non-finite numbers as null), with the baselines'
    fields (see :func:`_baseline_fields`) when the screen ran some."""
    columns = _screen_baselines(ranked)
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
                **_baseline_fields(entry, columns),
            }
            for entry in ranked
        ],
    })


def to_csv(ranked: list[RankedRun]) -> str:
    columns = _screen_baselines(ranked)
    extra = list(_baseline_fields(ranked[0], columns)) if ranked else []
    return _csv(
        (*SCREEN_CSV_COLUMNS, *extra),
        (
            (entry.rank, entry.arch, entry.status, entry.val_loss, entry.val_loss_std, entry.val_acc,
             entry.epoch, entry.lr_selected, entry.params, entry.seconds, entry.reason, entry.val_acc_std,
             *_baseline_fields(entry, columns).values())
            for entry in ranked
        ),
    )


def to_markdown(ranked: list[RankedRun]) -> str:
    columns = _screen_baselines(ranked)
    header = (
        "rank", "architecture", "params", "best val loss", "acc", "epoch", "lr selected", "time",
        *(_baseline_header(baseline) for baseline in columns), "status",
    )
    rows = [
        (
            str(entry.rank), entry.arch, format_params(entry.params),
            format_loss(entry.val_loss, entry.val_loss_std), format_acc(entry.val_acc, entry.val_acc_std),
            MISSING if entry.epoch is None else str(entry.epoch), format_lr(entry.lr_selected),
            format_seconds(entry.seconds),
            *(_baseline_cell(entry.baseline(baseline.method)) for baseline in columns),
            _status_note(entry.status, entry.reason),
        )
        for entry in ranked
    ]
    return _markdown_table(header, rows)


# -- compare ------------------------------------------------------------------------------
def compare_tables(summary: CompareSummary) -> list[Table]:
    """One table per architecture (its methods), then the two rankings side by side."""
    return [_arch_table(entry) for entry in summary.architectures] + [_ranking_table(summary)]


def _method_rows(entry: ArchComparison) -> list[tuple[str, MethodStats, BaselineStats | None]]:
    """The rows of one architecture: Alrao, then each baseline's rates by increasing rate."""
    rows: list[tuple[str, MethodStats, BaselineStats | None]] = (
        [(ALRAO, entry.alrao, None)] if entry.alrao is not None else []
    )
    for baseline in entry.baselines:
        for stats in baseline.rates:
            label = baseline.method if stats.lr is None else f"{baseline.method} lr={format_lr(stats.lr)}"
            rows.append((label, stats, baseline))
    return rows


def _is_best_rate(stats: MethodStats, baseline: BaselineStats | None) -> bool:
    return baseline is not None and baseline.tuned_over_grid and stats is baseline.best


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
    for label, stats, baseline in _method_rows(entry):
        note = ""
        if stats is entry.alrao:
            note = f"gap {format_gap(entry.gap)} vs best SGD; favours lr {format_lr(stats.lr_selected)}"
        elif _is_best_rate(stats, baseline):
            note = f"★ best {baseline.label} rate"
        if stats.status != "ok" and stats.reason:
            note = stats.reason
        table.add_row(
            label,
            format_loss(stats.val_loss, stats.val_loss_std),
            format_acc(stats.val_acc, stats.val_acc_std),
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
    for pair, alrao_rank, sgd_rank in _ranking_rows(summary):
        table.add_row(
            Text(pair.arch), alrao_rank, sgd_rank, format_loss(pair.alrao_val_loss), format_loss(pair.sgd_val_loss),
        )
    return table


def _ranking_rows(summary: CompareSummary) -> list[tuple[RankPair, str, str]]:
    """Each pair of the ranking with its two ranks as shown (``1=`` for a tie)."""
    alrao = [pair.alrao_rank for pair in summary.ranking]
    sgd = [pair.sgd_rank for pair in summary.ranking]
    return [(pair, format_rank(pair.alrao_rank, alrao), format_rank(pair.sgd_rank, sgd)) for pair in summary.ranking]


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
    """The documented keys, then ``baselines`` for any baseline the schema has no key for."""
    data = {
        "arch": entry.arch,
        "alrao": _stats_json(entry.alrao),
        "sgd": _rates_json(entry.sgd),
        "adam": _stats_json(entry.adam),
        "best_sgd_lr": entry.best_sgd_lr,
        "gap": entry.gap,
    }
    others = [baseline for baseline in entry.baselines if baseline.method not in SCHEMA_BASELINES]
    if others:
        data["baselines"] = {baseline.method: _baseline_json(baseline) for baseline in others}
    return data


def _baseline_json(baseline: BaselineStats) -> dict[str, Any]:
    """A grid as ``sgd`` is written (by rate, and its best rate); a single run as ``adam`` is."""
    if baseline.tuned_over_grid:
        best = baseline.best
        return {"label": baseline.label, "rates": _rates_json(baseline.rates), "best_lr": best.lr if best else None}
    shown = baseline.shown
    return {"label": baseline.label, "lr": shown.lr if shown else None, **(_stats_json(shown) or {})}


def _rates_json(rates: Iterable[MethodStats]) -> dict[str, Any]:
    return {lr_key(stats.lr): _stats_json(stats) for stats in rates if stats.lr is not None}


def _stats_json(stats: MethodStats | None) -> dict[str, Any] | None:
    if stats is None:
        return None
    return {
        "val_loss": stats.val_loss, "val_acc": stats.val_acc, "status": stats.status,
        "val_loss_std": stats.val_loss_std, "val_acc_std": stats.val_acc_std,
    }


def compare_to_csv(summary: CompareSummary) -> str:
    """One row per architecture and method (and rate), means over seeds."""
    rows = []
    for entry in summary.architectures:
        for _, stats, baseline in _method_rows(entry):
            is_alrao = stats is entry.alrao
            rows.append((
                entry.arch, stats.method, stats.lr, stats.status, stats.val_loss, stats.val_loss_std,
                stats.val_acc, stats.lr_selected,
                stats.method == REFERENCE and _is_best_rate(stats, baseline),
                entry.gap if is_alrao else None, stats.seconds, stats.reason, stats.val_acc_std,
            ))
    return _csv(COMPARE_CSV_COLUMNS, rows)


def compare_to_markdown(summary: CompareSummary) -> str:
    header = ("architecture", "method", "val loss", "acc", "status", "note")
    rows = []
    for entry in summary.architectures:
        for label, stats, baseline in _method_rows(entry):
            note = ""
            if stats is entry.alrao:
                note = f"gap {format_gap(entry.gap)}"
            elif _is_best_rate(stats, baseline):
                note = f"best {baseline.label} rate"
            rows.append((
                entry.arch, label, format_loss(stats.val_loss, stats.val_loss_std),
                format_acc(stats.val_acc, stats.val_acc_std), _status_note(stats.status, stats.reason), note,
            ))
    ranking = _markdown_table(
        ("architecture", "Alrao rank", "best-SGD rank"),
        [(pair.arch, alrao_rank, sgd_rank) for pair, alrao_rank, sgd_rank in _ranking_rows(summary)],
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
CLIP_FACTOR = 3.0  # a loss axis ends at most this far above the worst loss of the runs worth reading
LOG_RANGE = 10.0  # a loss axis is logarithmic only when its losses span more than this ratio
_SINGLE_RUN_COLORS = ("tab:red", "tab:orange", "tab:purple", "tab:brown", "tab:pink")
_GRID_LINESTYLES = ("-", ":", "-.")


def plot_learning_curves(study: StudyResult, out_dir: Path) -> list[Path]:
    """``curves-ARCH.png`` per architecture: see :func:`learning_curve_figures`."""
    names = _safe_names(_first_seed_runs(study.runs))
    return [
        _save(figure, out_dir, f"curves-{names[arch]}.png") for arch, figure in learning_curve_figures(study).items()
    ]


def learning_curve_figures(study: StudyResult) -> dict[str, Figure]:
    """Per architecture, training and validation loss per epoch: Alrao against each
    baseline run (as in the Alrao paper's Figure 2). The first seed only, for legibility.

    Every run is in the legend, even one with nothing to draw (a rate that diverged in its
    first epoch reads ``sgd lr=1.0e+01 (diverged)``). A loss axis ends a few times above
    the worst loss of the runs worth reading (Alrao and each method's best run), so that a
    rate whose loss blew up to 1e18 does not flatten every other curve; the curves it cuts
    are marked ``(off scale)``. A rate keeps its colour in every figure of the study.
    """
    styles = _curve_styles(study.runs)
    figures = {}
    for arch, runs in _first_seed_runs(study.runs).items():
        runs = sorted(runs, key=_plot_order)
        if any(math.isfinite(value) for run in runs for value in (*_losses(run, "train"), *_losses(run, "val"))):
            figures[arch] = _curves_figure(arch, runs, styles)
    return figures


def _curves_figure(arch: str, runs: list[RunResult], styles: dict[tuple[str, float | None], dict]) -> Figure:
    figure = _figure(width=11, height=4.2)
    train_axes, val_axes = figure.subplots(1, 2, sharex=True)
    panels = [(train_axes, "training", "train"), (val_axes, "validation", "val")]
    reference = _reference_runs(runs)
    caps = {
        which: _clip_limit([_losses(run, which) for run in reference], [_losses(run, which) for run in runs])
        for _, _, which in panels
    }
    off_scale = {
        run.key for run in runs for which, cap in caps.items()
        if cap is not None and any(value > cap for value in _losses(run, which) if math.isfinite(value))
    }
    for axes, what, which in panels:
        for run in runs:
            label = _curve_label(run, run.key in off_scale)
            losses = _losses(run, which)
            style = styles[run.method, run.lr]
            if run.status != "ok":  # marked points: a run that diverged after one epoch is one point
                style = {**style, "marker": "o", "markersize": 3}
            if any(math.isfinite(value) for value in losses):
                axes.plot([record.epoch for record in run.history], losses, label=label, **style)
            else:  # nothing to draw: the run still belongs in the legend
                axes.plot([], [], label=label, **style)
        _shape_loss_axis(axes, f"{what} loss", [_losses(run, which) for run in runs], caps[which])
    val_axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    figure.suptitle(f"{arch}: loss per epoch (seed {runs[0].seed})")
    return figure


def _losses(run: RunResult, which: str) -> list[float]:
    """A run's training or validation loss per epoch; non-finite ones as NaN (a gap in the line)."""
    values = [record.train_loss if which == "train" else record.val_loss for record in run.history]
    return [value if math.isfinite(value) else math.nan for value in values]


def _reference_runs(runs: list[RunResult]) -> list[RunResult]:
    """The runs worth reading: for each method, its healthy run with the lowest validation loss."""
    best: dict[str, RunResult] = {}
    for run in runs:
        if run.status != "ok" or run.best_val_loss is None:
            continue
        if run.method not in best or run.best_val_loss < best[run.method].best_val_loss:
            best[run.method] = run
    return list(best.values())


def _clip_limit(reference: list[list[float]], every: list[list[float]]) -> float | None:
    """Where a loss axis should end, when some curve runs far above the reference runs."""
    worst = max((value for losses in reference for value in losses if math.isfinite(value)), default=None)
    if worst is None or worst <= 0:
        return None
    cap = CLIP_FACTOR * worst
    return cap if any(value > cap for losses in every for value in losses if math.isfinite(value)) else None


def _shape_loss_axis(axes: Axes, ylabel: str, curves: list[list[float]], cap: float | None) -> None:
    """Whole epochs on x; y logarithmic only over more than a decade, and cut at ``cap``."""
    from matplotlib.ticker import MaxNLocator

    axes.set_xlabel("epoch")
    axes.set_ylabel(ylabel)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    shown = [value for losses in curves for value in losses if math.isfinite(value) and (cap is None or value <= cap)]
    if not shown:
        return
    low, high = min(shown), max(shown)
    log = low > 0 and high / low > LOG_RANGE
    if log:
        axes.set_yscale("log")
    if cap is not None:
        if log:
            axes.set_ylim(low / 1.1, high * 1.1)
        else:
            margin = 0.05 * ((high - low) or abs(high) or 1.0)
            axes.set_ylim(low - margin, high + margin)


def _curve_label(run: RunResult, off_scale: bool) -> str:
    label = run.method if run.lr is None else f"{run.method} lr={format_lr(run.lr)}"
    if run.status != "ok":
        label += f" ({run.status})"
    return label + " (off scale)" if off_scale else label


def _curve_styles(runs: Iterable[RunResult]) -> dict[tuple[str, float | None], dict[str, Any]]:
    """A line style per method and rate, from every run of the study, so that a rate keeps
    its colour from one architecture's figure to the next: Alrao thick black, the rates of
    a grid along viridis (one line style per grid method), methods run once dashed."""
    rates: dict[str, set[float | None]] = {}
    tuned: dict[str, bool] = {}
    for run in runs:
        rates.setdefault(run.method, set()).add(run.lr)
        tuned[run.method] = run.tuned_over_grid
    styles: dict[tuple[str, float | None], dict[str, Any]] = {}
    grids = singles = 0
    for method in sorted(rates, key=lambda name: method_order(name, tuned[name])):
        ordered = sorted(rates[method], key=lambda lr: math.inf if lr is None else lr)
        if method == ALRAO:
            styles.update({(method, lr): {"color": "black", "linewidth": 2.5} for lr in ordered})
        elif tuned[method]:
            linestyle = _GRID_LINESTYLES[grids % len(_GRID_LINESTYLES)]
            grids += 1
            for lr, color in zip(ordered, _palette(len(ordered))):
                styles[method, lr] = {"color": color, "linewidth": 1.2, "linestyle": linestyle}
        else:
            color = _SINGLE_RUN_COLORS[singles % len(_SINGLE_RUN_COLORS)]
            singles += 1
            styles.update({(method, lr): {"color": color, "linewidth": 1.5, "linestyle": "--"} for lr in ordered})
    return styles


def _plot_order(run: RunResult) -> tuple:
    return (*method_order(run.method, run.tuned_over_grid), run.lr if run.lr is not None else 0.0)


def plot_posterior(study: StudyResult, out_dir: Path) -> list[Path]:
    """``posterior-ARCH.png`` per architecture: see :func:`posterior_figures`."""
    names = _safe_names(_first_seed_runs(study.runs))
    return [_save(figure, out_dir, f"posterior-{names[arch]}.png") for arch, figure in posterior_figures(study).items()]


def posterior_figures(study: StudyResult) -> dict[str, Figure]:
    """Per architecture, Alrao's switch posterior over its output copies per epoch, stacked
    (as in the paper's Figure 4): which rates the model trusts as training goes on."""
    from matplotlib.ticker import MaxNLocator

    figures = {}
    for arch, runs in _first_seed_runs(study.runs).items():
        run = next((run for run in runs if run.method == ALRAO), None)
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
        axes.stackplot([record.epoch for record in records], weights, labels=labels, colors=_palette(copies))
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel("switch posterior")
        axes.set_ylim(0, 1)
        handles, legend_labels = axes.get_legend_handles_labels()  # listed top-down, as stacked
        axes.legend(handles[::-1], legend_labels[::-1], fontsize="small", loc="upper left",
                    bbox_to_anchor=(1.02, 1.0), title="copy")
        axes.set_title(f"{arch}: which output copy the switch trusts (seed {run.seed})")
        figures[arch] = figure
    return figures


def plot_rank_comparison(summary: CompareSummary, out_dir: Path) -> list[Path]:
    """``ranking.png``: see :func:`rank_comparison_figure`; nothing when nothing is ranked."""
    figure = rank_comparison_figure(summary)
    return [] if figure is None else [_save(figure, out_dir, "ranking.png")]


def rank_comparison_figure(summary: CompareSummary) -> Figure | None:
    """Alrao's rank of each architecture against its best-tuned SGD rank: on the diagonal,
    screening with Alrao would have picked what tuning each one would have. Tied ranks
    read ``1=`` on the axes; architectures on the same point are labelled one above the other."""
    if not summary.ranking:
        return None
    figure = _figure(width=6, height=6)
    axes = figure.subplots()
    size = len(summary.ranking)
    axes.plot([0.5, size + 0.5], [0.5, size + 0.5], color="0.7", linestyle="--", linewidth=1)
    axes.scatter([pair.alrao_rank for pair in summary.ranking], [pair.sgd_rank for pair in summary.ranking])
    labelled: dict[tuple[int, int], int] = {}
    for pair in summary.ranking:
        point = (pair.alrao_rank, pair.sgd_rank)
        below = labelled.get(point, 0)
        labelled[point] = below + 1
        axes.annotate(pair.arch, point, textcoords="offset points", xytext=(5, 5 + 11 * below), fontsize="small")
    ticks = list(range(1, size + 1))
    alrao, sgd = [pair.alrao_rank for pair in summary.ranking], [pair.sgd_rank for pair in summary.ranking]
    axes.set_xticks(ticks, [format_rank(tick, alrao) for tick in ticks])
    axes.set_yticks(ticks, [format_rank(tick, sgd) for tick in ticks])
    axes.set_xlim(0.5, size + 0.5)
    axes.set_ylim(0.5, size + 0.5)
    axes.set_xlabel("rank by Alrao (1 = lowest validation loss)")
    axes.set_ylabel("rank by best-tuned SGD")
    tau = MISSING if summary.kendall_tau is None else f"{summary.kendall_tau:.2f}"
    rho = MISSING if summary.spearman_rho is None else f"{summary.spearman_rho:.2f}"
    axes.set_title(f"Kendall tau {tau}, Spearman rho {rho}")
    return figure


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
            hint="make the folder writable, or pass --no-plots and draw them elsewhere "
            "with `alrao report RUN_DIR --plots-dir DIR`",
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


def _palette(count: int) -> list[tuple[float, float, float, float]]:
    from matplotlib import colormaps

    colormap = colormaps["viridis"]
    return [colormap(i / max(count - 1, 1)) for i in range(count)]
