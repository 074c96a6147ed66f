"""The rich tables of a screen and a compare, for people at a terminal.

Built from results alone (nothing here trains), so ``alrao report RUN_DIR`` redraws the
tables a run printed. Which rows and columns they hold is chosen in :mod:`.layout`, shared
with the Markdown and CSV exports; how each number reads, in :mod:`.format`. User text
(architecture names, error messages) goes into cells as ``Text``, never as markup.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.table import Table
from rich.text import Text

from alrao_cli.report.format import (
    MISSING,
    format_acc,
    format_gap,
    format_loss,
    format_lr,
    format_params,
    format_seconds,
    printable,
    sparkline,
    status_note,
)
from alrao_cli.report.layout import (
    baseline_cell,
    baseline_header,
    compare_footer,
    is_best_rate,
    method_rows,
    ranking_rows,
    screen_baselines,
)
from alrao_cli.results.ranking import ArchComparison, CompareSummary, RankedRun
from alrao_cli.results.separability import NoiseUnmeasured, Separability


# -- screen -------------------------------------------------------------------------------
def screen_table(
    ranked: list[RankedRun],
    methods: tuple[str, ...] = ("alrao",),
    noise: Separability | NoiseUnmeasured | None = None,
) -> Table:
    """The screen's ranking, with a column per baseline the screen ran (``--baseline``).

    The title names the method the screen ranks by; a portfolio (several ``methods``)
    gets a column saying which of them each architecture's numbers come from. Failed and
    diverged rows are dim; their reasons go under the table, where long error messages
    get the full width instead of squeezing every column.

    ``noise`` says which neighbouring rows differ beyond seed-to-seed noise: a row not
    separable from the one above has ``≈`` by its rank, and the pairs are said in words
    under the table; with one seed, the table says the noise is unmeasured.
    """
    close_to_above = not_separable_from_above(noise)
    reasons = [
        printable(f"{entry.rank}. {entry.arch}: {status_note(entry.status, entry.reason)}")
        for entry in ranked
        if entry.status != "ok"
    ]
    table = Table(
        title=screen_title(ranked, methods),
        title_justify="left",
        caption=Text("\n".join(reasons + noise_lines(noise)), style="dim") if reasons or noise else None,
        caption_justify="left",
    )
    table.add_column("#", justify="right")
    table.add_column("architecture", overflow="fold", min_width=12)  # folds long names, never cuts them
    portfolio = len(methods) > 1
    if portfolio:
        table.add_column("method")
    for name in ("params", "val loss", "acc", "epoch", "lr", "time"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("curve", no_wrap=True)
    columns = screen_baselines(ranked)
    for baseline in columns:
        table.add_column(baseline_header(baseline), justify="right")
    if reasons:
        table.add_column("status")
    for entry in ranked:
        cells: list[str | Text] = [
            f"{entry.rank}≈" if entry.arch in close_to_above else str(entry.rank),
            Text(printable(entry.arch)),
            *([entry.method_label] if portfolio else []),
            format_params(entry.params),
            format_loss(entry.val_loss, entry.val_loss_std),
            format_acc(entry.val_acc, entry.val_acc_std),
            MISSING if entry.epoch is None else str(entry.epoch),
            format_lr(entry.lr_selected if entry.lr_selected is not None else entry.lr),
            format_seconds(entry.seconds),
            sparkline(entry.curve),
        ]
        cells += [baseline_cell(entry.baseline(baseline.method)) for baseline in columns]
        if reasons:
            cells.append(entry.status)
        table.add_row(*cells, style="dim" if entry.status != "ok" else None)
    return table


def not_separable_from_above(noise: Separability | NoiseUnmeasured | None) -> set[str]:
    if not isinstance(noise, Separability):
        return set()
    return {pair.lower for pair in noise.pairs if pair.tested and not pair.separable}


def noise_lines(noise: Separability | NoiseUnmeasured | None) -> list[str]:
    """What the caption says about noise: the rows that cannot be told apart, or that nobody measured."""
    if noise is None:
        return []
    if isinstance(noise, NoiseUnmeasured):
        return [noise.sentence()]
    close = [pair.sentence() for pair in noise.pairs if pair.tested and not pair.separable]
    if not close:
        return [f"every neighbouring pair of rows differs beyond noise ({noise.seeds} seeds, paired t at {noise.level:.0%})"]
    return ["≈ not separable from the row above:", *close]


def screen_title(ranked: list[RankedRun], methods: tuple[str, ...]) -> str:
    """What the ranking is by, in words: the method (or portfolio) and what ``lr`` means."""
    labels = {entry.method: entry.method_label for entry in ranked}
    names = " + ".join(labels.get(method, method) for method in methods)
    if methods == ("alrao",):
        return "Ranked by best validation loss, Alrao (no rate tuned); lr = suggested single rate, the favoured copy's"
    if len(methods) > 1:
        return f"Ranked by best validation loss over {names} (each architecture by its better method); lr = that method's"
    if any(entry.tuned_over_grid for entry in ranked):
        return f"Ranked by best validation loss, {names} at its best --grid rate; lr = that rate"
    return f"Ranked by best validation loss, {names}, one run each; lr = its rate"


# -- compare ------------------------------------------------------------------------------
def compare_tables(summary: CompareSummary) -> list[Table]:
    """One table per architecture (its methods), then the two rankings side by side."""
    return [_arch_table(entry) for entry in summary.architectures] + [_ranking_table(summary)]


def _arch_table(entry: ArchComparison) -> Table:
    seeds = len(entry.per_seed)
    title = f"{printable(entry.arch)}: Alrao against single-rate training"
    if seeds > 1:
        title += f" (mean ± std over {seeds} seeds)"
    table = Table(title=Text(title), title_justify="left")
    table.add_column("method", overflow="fold")
    for name in ("val loss", "acc"):
        table.add_column(name, justify="right")
    table.add_column("status")
    table.add_column("note")
    for label, stats, baseline in method_rows(entry):
        note = ""
        if stats is entry.alrao:
            note = f"gap {format_gap(entry.gap)} vs best SGD; suggests lr {format_lr(stats.lr_selected)}"
        elif is_best_rate(stats, baseline):
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
    footer = compare_footer(summary)
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
    for pair, alrao_rank, sgd_rank in ranking_rows(summary):
        table.add_row(
            Text(pair.arch), alrao_rank, sgd_rank, format_loss(pair.alrao_val_loss), format_loss(pair.sgd_val_loss),
        )
    return table


def _longest(texts: Iterable[str], cap: int) -> int:
    return min(max((len(text) for text in texts), default=0), cap)
