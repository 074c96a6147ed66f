"""What the command line prints about a study, in each format, from its results alone.

``alrao screen`` / ``compare`` print through here when they end, and ``alrao report``
prints the same thing from the saved results: one code path, so a report redraws exactly
what the run showed. Nothing here imports torch or the training code: a report of a
saved run starts fast and needs none of the methods that produced it.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from alrao_cli.report import exports, plots, tables
from alrao_cli.results.ranking import CompareSummary, RankedRun, compare_architectures, rank_screen, screened_methods
from alrao_cli.results.records import StudyResult
from alrao_cli.results.separability import screen_rows, screen_separability, separability
from alrao_cli.util.reasons import one_line_reason

if TYPE_CHECKING:
    from alrao_cli.sources.listing import ZooRow
    from alrao_cli.study.driver import StudyOutcome

FORMATS = ("table", "json", "csv", "markdown")


def ranked_screen(study: StudyResult) -> list[RankedRun]:
    """A screen's ranking by the method(s) it ranked by, as its saved config says."""
    return rank_screen(study.runs, screened_methods(study.config))


def compared(study: StudyResult) -> CompareSummary:
    """A compare's summary, measuring the method it measured, as its saved config says."""
    return compare_architectures(study.runs, subject=screened_methods(study.config)[0])


def study_json(study: StudyResult, run_dir: Path) -> dict:
    if study.kind == "compare":
        return exports.compare_json(str(run_dir), compared(study), interrupted=study.interrupted)
    methods = screened_methods(study.config)
    rows = screen_rows(study.runs, methods)
    seed_losses = {row.arch: dict(row.losses) for row in rows}
    return exports.screen_json(
        str(run_dir), ranked_screen(study), separability(rows), seed_losses, interrupted=study.interrupted
    )


def study_tables(study: StudyResult) -> list[Table]:
    if study.kind == "compare":
        return tables.compare_tables(compared(study))
    methods = screened_methods(study.config)
    return [tables.screen_table(ranked_screen(study), methods, screen_separability(study.runs, methods))]


def print_report(study: StudyResult, run_dir: Path, output_format: str, out: Console) -> None:
    """Print a study's results as a rich table, JSON, CSV or Markdown on ``out``."""
    if output_format == "json":
        out.print_json(json.dumps(study_json(study, run_dir), allow_nan=False))
    elif output_format in ("csv", "markdown"):
        compare = study.kind == "compare"
        if compare:
            summary = compared(study)
            text = exports.compare_to_csv(summary) if output_format == "csv" else exports.compare_to_markdown(summary)
        else:
            ranked = ranked_screen(study)
            if output_format == "csv":
                text = exports.to_csv(ranked)
            else:
                noise = screen_separability(study.runs, screened_methods(study.config))  # as the table's
                text = exports.to_markdown(ranked, noise)
        out.out(text, highlight=False)
    elif not study.runs:  # stopped before any run finished: an empty table would say nothing
        out.print(f"No run of this {study.kind} has finished yet: nothing to rank.", highlight=False)
    else:
        for table in study_tables(study):
            out.print(table)


def write_plots(study: StudyResult, run_dir: Path) -> list[Path]:
    """Every plot the study can draw, into ``run_dir`` (``alrao report --plots``).

    A folder that cannot take them is an :class:`~alrao_cli.errors.AlraoUserError`: the
    user asked for the plots, and for nothing else.
    """
    return plots.write_plots(plots.study_plots(study), run_dir)


def write_plots_or_warn(study: StudyResult, run_dir: Path, err: Console) -> list[Path]:
    """Every plot the study can draw, into ``run_dir``; one that cannot be drawn is a warning.

    At the end of a study the results are saved and the ranking printed: a full disk or a
    matplotlib error costs the plot it hits (one ``warning:`` line naming it on ``err``),
    never the others, the study's exit code, or a traceback.
    """
    paths = []
    for plot in plots.study_plots(study):
        try:
            paths.append(plots.write_plot(plot, run_dir))
        except Exception as error:  # noqa: BLE001 - a plot is a by-product: any failure is a warning
            reason = (error.strerror or str(error)) if isinstance(error, OSError) else one_line_reason(error)
            err.print(
                Text.assemble(("warning:", "yellow"), f" could not draw the plot {run_dir / plot.name}: {reason}"),
                highlight=False,
                soft_wrap=True,  # one line per plot, even in a narrow terminal or a CI log
            )
    return paths


def print_outcome(outcome: StudyOutcome, out: Console, err: Console, json_out: bool, quiet: bool) -> None:
    """The end of a screen or compare: the table (or JSON), then the plots, then what to do next.

    The ranking comes first, so that nothing the plots run into can hide it; the caller
    exits with the study's own exit code.
    """
    study, run_dir = outcome.study, outcome.run_dir
    print_report(study, run_dir, "json" if json_out else "table", out)
    if study.config.get("plots", True) and not outcome.interrupted:
        write_plots_or_warn(study, run_dir, err)
    if outcome.interrupted:  # even with --quiet: this is the one line the user needs
        cause = "terminated (SIGTERM)" if outcome.terminated else "interrupted"
        command = f"alrao {study.kind} --resume {shlex.quote(str(run_dir))}"
        err.print(
            f"[yellow]{cause}[/]: {len(study.runs)} run(s) saved in {escape(str(run_dir))}. "
            f"Resume with:\n  {escape(command)}",
            highlight=False,
            soft_wrap=True,  # a command to copy: never wrapped
        )
        return
    if quiet:
        return
    if outcome.stopped_early:
        err.print("[yellow]stopped at the first failure (--fail-fast)[/]")
    failed = [run for run in study.runs if run.status != "ok"]
    note = f", {len(failed)} failed or diverged" if failed else ""
    err.print(f"results in {escape(str(run_dir))}{note}", highlight=False, soft_wrap=True)


def print_models(pattern: str, torchvision_models: bool, json_out: bool, out: Console) -> None:
    """The zoo with parameter counts on MNIST-1D shapes, or torchvision's classifier names.

    The rows come from :mod:`alrao_cli.sources.listing` (imported here, on use: it builds
    models, and the rest of this module must not need torch). A pattern that matches
    nothing raises :class:`~alrao_cli.errors.AlraoUserError`.
    """
    from alrao_cli.sources.listing import torchvision_archs, zoo_rows

    if torchvision_models:
        print_torchvision(torchvision_archs(pattern), json_out, out)
    else:
        print_zoo(zoo_rows(pattern), json_out, out)


def print_torchvision(archs: list[str], json_out: bool, out: Console) -> None:
    """torchvision's classifiers as ARCH names: one a line, or a JSON list."""
    if json_out:
        out.print_json(json.dumps(archs))
        return
    for arch in archs:
        out.print(arch, highlight=False)


def print_zoo(rows: list[ZooRow], json_out: bool, out: Console) -> None:
    """The zoo listing as a table, or as JSON (one object per model)."""
    if json_out:
        out.print_json(json.dumps([row.to_dict() for row in rows]))
        return
    table = Table(title="alrao zoo (use a name as ARCH)", title_justify="left")
    for column, justify in [("name", "left"), ("params (MNIST-1D)", "right"), ("fits", "left"), ("description", "left")]:
        table.add_column(column, justify=justify)
    for row in rows:
        table.add_row(row.name, f"{row.params_mnist1d:,}", row.fits, row.description)
    out.print(table)
