"""Which rows and columns a screen or a compare shows, shared by the rich tables and the exports.

The rich tables (:mod:`.tables`) and the Markdown and CSV exports (:mod:`.exports`) show the
same rows in the same order, with the same baseline columns and the same notes: they
choose them here, so the two cannot drift apart. Baselines are shown as
:mod:`alrao_cli.results.ranking` describes them (each with the label its method declares),
so a newly registered baseline gets its rows and columns without a change here.
"""

from __future__ import annotations

from alrao_cli.report.format import (
    MISSING,
    format_loss,
    format_lr,
    format_rank,
    format_seconds,
)
from alrao_cli.results.ranking import (
    ALRAO,
    ArchComparison,
    BaselineStats,
    CompareSummary,
    MethodStats,
    RankedRun,
    RankPair,
    method_order,
)


# -- screen -------------------------------------------------------------------------------
def screen_baselines(ranked: list[RankedRun]) -> list[BaselineStats]:
    """The baselines the screen ran, one column each in registration order (each described
    by the first architecture that has it): none asked for, no column."""
    seen: dict[str, BaselineStats] = {}
    for entry in ranked:
        for baseline in entry.baselines:
            seen.setdefault(baseline.method, baseline)
    return sorted(seen.values(), key=lambda baseline: method_order(baseline.method, baseline.tuned_over_grid))


def baseline_header(baseline: BaselineStats) -> str:
    """A baseline's column title: ``best SGD (lr)`` for a grid, its label for a single run."""
    return f"best {baseline.label} (lr)" if baseline.tuned_over_grid else baseline.label


def baseline_cell(baseline: BaselineStats | None) -> str:
    """A grid's best rate and its loss, ``0.3100 (1.0e-01)``; a single run's loss, or its status."""
    shown = baseline.shown if baseline is not None else None
    if shown is None:
        return MISSING
    if baseline.tuned_over_grid:
        return f"{format_loss(shown.val_loss)} ({format_lr(shown.lr)})"
    return format_loss(shown.val_loss) if shown.status == "ok" else shown.status


# -- compare ------------------------------------------------------------------------------
def method_rows(entry: ArchComparison) -> list[tuple[str, MethodStats, BaselineStats | None]]:
    """The rows of one architecture: Alrao, then each baseline's rates by increasing rate."""
    rows: list[tuple[str, MethodStats, BaselineStats | None]] = (
        [(ALRAO, entry.alrao, None)] if entry.alrao is not None else []
    )
    for baseline in entry.baselines:
        for stats in baseline.rates:
            label = baseline.method if stats.lr is None else f"{baseline.method} lr={format_lr(stats.lr)}"
            rows.append((label, stats, baseline))
    return rows


def is_best_rate(stats: MethodStats, baseline: BaselineStats | None) -> bool:
    """Whether ``stats`` is the rate its grid keeps (a single-run baseline has none)."""
    return baseline is not None and baseline.tuned_over_grid and stats is baseline.best


def ranking_rows(summary: CompareSummary) -> list[tuple[RankPair, str, str]]:
    """Each pair of the ranking with its two ranks as shown (``1=`` for a tie)."""
    alrao = [pair.alrao_rank for pair in summary.ranking]
    sgd = [pair.sgd_rank for pair in summary.ranking]
    return [(pair, format_rank(pair.alrao_rank, alrao), format_rank(pair.sgd_rank, sgd)) for pair in summary.ranking]


def compare_footer(summary: CompareSummary) -> tuple[str, str]:
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
