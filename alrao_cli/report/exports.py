"""A screen or a compare as data for other programs: strict JSON, CSV and Markdown text.

The JSON layouts are documented (``alrao screen --json``, ``alrao report --format json``)
and scripts rely on them: keys only ever get added. Every export is strict (a non-finite
number is ``null`` in JSON, an empty CSV cell), and the Markdown rows are the rows of the
rich tables (:mod:`.layout` chooses them for both).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from alrao_cli.report.format import (
    MISSING,
    format_acc,
    format_gap,
    format_loss,
    format_lr,
    format_params,
    format_seconds,
    lr_key,
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
from alrao_cli.report.tables import noise_lines, not_separable_from_above  # as the terminal table says them
from alrao_cli.results.ranking import (
    REFERENCE,
    ArchComparison,
    BaselineStats,
    CompareSummary,
    MethodStats,
    RankedRun,
)
from alrao_cli.results.records import json_safe
from alrao_cli.results.separability import NoiseUnmeasured, Separability

SCHEMA_BASELINES = ("sgd", "adam")  # the baselines with keys of their own in the compare JSON

SCREEN_CSV_COLUMNS = (
    "rank", "arch", "status", "val_loss", "val_loss_std", "val_acc", "epoch", "lr_selected",
    "params", "seconds", "reason", "val_acc_std",
)
COMPARE_CSV_COLUMNS = (
    "arch", "method", "lr", "status", "val_loss", "val_loss_std", "val_acc", "lr_selected",
    "best_sgd", "gap", "seconds", "reason", "val_acc_std",
)


# -- screen -------------------------------------------------------------------------------
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


def screen_json(
    run_dir: str | Path, ranked: list[RankedRun], noise: Separability | NoiseUnmeasured | None = None,
    seed_losses: dict[str, dict[int, float | None]] | None = None, *, interrupted: bool | None = None,
) -> dict[str, Any]:
    """The ranking as strict JSON data (non-finite numbers as null), with the baselines'
    fields (see :func:`_baseline_fields`) when the screen ran some, each entry's loss per
    seed (``val_loss_seeds``), whether neighbouring rows are separable and whether the
    screen was interrupted (its ranking partial), when given."""
    columns = screen_baselines(ranked)
    extra: dict[str, Any] = {} if noise is None else {"separability": separability_json(noise)}
    return json_safe({
        "run_dir": str(run_dir),
        **_interrupted_json(interrupted),
        **extra,
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
                "method": entry.method,
                "lr": entry.lr,
                **({} if seed_losses is None else {"val_loss_seeds": {str(seed): loss for seed, loss in seed_losses.get(entry.arch, {}).items()}}),
                **_baseline_fields(entry, columns),
            }
            for entry in ranked
        ],
    })


def _interrupted_json(interrupted: bool | None) -> dict[str, Any]:
    """``interrupted``: the study was stopped (Ctrl-C, SIGTERM) before every run finished."""
    return {} if interrupted is None else {"interrupted": interrupted}


def separability_json(noise: Separability | NoiseUnmeasured) -> dict[str, Any]:
    """Which neighbouring rows differ beyond noise, as data; with one seed, that nobody measured."""
    if isinstance(noise, NoiseUnmeasured):
        return {"seeds": noise.seeds, "measured": False, "hint": noise.hint, "pairs": []}
    return {
        "seeds": noise.seeds, "measured": True, "level": noise.level, "test": "paired t interval over seeds",
        "pairs": [
            {
                "upper": pair.upper, "lower": pair.lower, "separable": pair.separable, "tested": pair.tested,
                "mean_difference": pair.mean_difference, "low": pair.low, "high": pair.high,
                "p_value": pair.p_value, "reason": pair.reason, "sentence": pair.sentence(),
            }
            for pair in noise.pairs
        ],
    }


def to_csv(ranked: list[RankedRun]) -> str:
    """The ranking, one row per architecture, with the baselines' fields as extra columns."""
    columns = screen_baselines(ranked)
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


def to_markdown(ranked: list[RankedRun], noise: Separability | NoiseUnmeasured | None = None) -> str:
    """The ranking as a Markdown table, the reasons of failed rows in its status column.

    With ``noise`` measured (several seeds), it says what the terminal table says: ``≈`` by
    the rank of a row not separable from the one above, and the pairs in words below the
    table, one paragraph each. A one-seed screen's "noise unmeasured" note is left out.
    """
    close_to_above = not_separable_from_above(noise)
    columns = screen_baselines(ranked)
    header = (
        "rank", "architecture", "params", "best val loss", "acc", "epoch", "lr selected", "time",
        *(baseline_header(baseline) for baseline in columns), "status",
    )
    rows = [
        (
            f"{entry.rank}≈" if entry.arch in close_to_above else str(entry.rank), entry.arch,
            format_params(entry.params),
            format_loss(entry.val_loss, entry.val_loss_std), format_acc(entry.val_acc, entry.val_acc_std),
            MISSING if entry.epoch is None else str(entry.epoch), format_lr(entry.lr_selected),
            format_seconds(entry.seconds),
            *(baseline_cell(entry.baseline(baseline.method)) for baseline in columns),
            status_note(entry.status, entry.reason),
        )
        for entry in ranked
    ]
    table = _markdown_table(header, rows)
    if not isinstance(noise, Separability):
        return table
    notes = [line.replace("\n", " ") for line in noise_lines(noise)]  # the caption's lines, as paragraphs
    return table + "".join(f"\n{note}\n" for note in notes)


# -- compare ------------------------------------------------------------------------------
def compare_json(run_dir: str | Path, summary: CompareSummary, *, interrupted: bool | None = None) -> dict[str, Any]:
    """The comparison as strict JSON data: means over seeds, and each seed's own values
    (and whether the compare was interrupted, its results partial, when given)."""
    return json_safe({
        "run_dir": str(run_dir),
        **_interrupted_json(interrupted),
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
        for _, stats, baseline in method_rows(entry):
            is_alrao = stats is entry.alrao
            rows.append((
                entry.arch, stats.method, stats.lr, stats.status, stats.val_loss, stats.val_loss_std,
                stats.val_acc, stats.lr_selected,
                stats.method == REFERENCE and is_best_rate(stats, baseline),
                entry.gap if is_alrao else None, stats.seconds, stats.reason, stats.val_acc_std,
            ))
    return _csv(COMPARE_CSV_COLUMNS, rows)


def compare_to_markdown(summary: CompareSummary) -> str:
    """The methods of each architecture, then the two rankings, then how well they agree."""
    header = ("architecture", "method", "val loss", "acc", "status", "note")
    rows = []
    for entry in summary.architectures:
        for label, stats, baseline in method_rows(entry):
            note = ""
            if stats is entry.alrao:
                note = f"gap {format_gap(entry.gap)}"
            elif is_best_rate(stats, baseline):
                note = f"best {baseline.label} rate"
            rows.append((
                entry.arch, label, format_loss(stats.val_loss, stats.val_loss_std),
                format_acc(stats.val_acc, stats.val_acc_std), status_note(stats.status, stats.reason), note,
            ))
    ranking = _markdown_table(
        ("architecture", "Alrao rank", "best-SGD rank"),
        [(pair.arch, alrao_rank, sgd_rank) for pair, alrao_rank, sgd_rank in ranking_rows(summary)],
    )
    return f"{_markdown_table(header, rows)}\n{ranking}\n{'; '.join(compare_footer(summary))}\n"


# -- text formats -------------------------------------------------------------------------
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
