"""What the command line prints about a study, in each format, from its results alone.

``alrao screen`` / ``compare`` print through here when they end, and ``alrao report``
prints the same thing from the saved results: one code path, so a report redraws exactly
what the run showed.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from alrao_cli.report import tables as report
from alrao_cli.results.ranking import compare_architectures, rank_screen
from alrao_cli.results.records import StudyResult

FORMATS = ("table", "json", "csv", "markdown")


def study_json(study: StudyResult, run_dir: Path) -> dict:
    if study.kind == "compare":
        return report.compare_json(str(run_dir), compare_architectures(study.runs))
    return report.screen_json(str(run_dir), rank_screen(study.runs))


def study_tables(study: StudyResult) -> list[Table]:
    if study.kind == "compare":
        return report.compare_tables(compare_architectures(study.runs))
    return [report.screen_table(rank_screen(study.runs))]


def print_report(study: StudyResult, run_dir: Path, output_format: str, out: Console) -> None:
    """Print a study's results as a rich table, JSON, CSV or Markdown on ``out``."""
    if output_format == "json":
        out.print_json(json.dumps(study_json(study, run_dir), allow_nan=False))
    elif output_format in ("csv", "markdown"):
        compare = study.kind == "compare"
        if compare:
            summary = compare_architectures(study.runs)
            text = report.compare_to_csv(summary) if output_format == "csv" else report.compare_to_markdown(summary)
        else:
            ranked = rank_screen(study.runs)
            text = report.to_csv(ranked) if output_format == "csv" else report.to_markdown(ranked)
        out.out(text, highlight=False)
    else:
        for table in study_tables(study):
            out.print(table)


def write_plots(study: StudyResult, run_dir: Path) -> list[Path]:
    """Every plot the study can draw, into the run directory."""
    paths = report.plot_learning_curves(study, run_dir) + report.plot_posterior(study, run_dir)
    if study.kind == "compare":
        paths += report.plot_rank_comparison(compare_architectures(study.runs), run_dir)
    return paths


def print_outcome(outcome, out: Console, err: Console, json_out: bool, quiet: bool) -> None:
    """The end of a screen or compare: the table (or JSON), plots, and what to do next."""
    study, run_dir = outcome.study, outcome.run_dir
    if study.config.get("plots", True) and not outcome.interrupted:
        write_plots(study, run_dir)
    if json_out:
        print_report(study, run_dir, "json", out)
    else:
        print_report(study, run_dir, "table", out)
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

    A pattern that matches nothing raises :class:`~alrao_cli.errors.AlraoUserError`.
    """
    from alrao_cli.sources.build import build_model, count_parameters
    from alrao_cli.sources.registry import find_torchvision_models, find_zoo

    if torchvision_models:
        names = find_torchvision_models(pattern)
        if json_out:
            out.print_json(json.dumps([f"torchvision:{n}" for n in names]))
        else:
            for name in names:
                out.print(f"torchvision:{name}", highlight=False)
        return
    entries = find_zoo(pattern)
    rows = []
    for entry in entries:
        params = count_parameters(build_model(entry.name, 10, (40,)))
        rows.append({"name": entry.name, "params_mnist1d": params, "fits": entry.fits_label(), "description": entry.description})
    if json_out:
        out.print_json(json.dumps(rows))
        return
    table = Table(title="alrao zoo (use a name as ARCH)", title_justify="left")
    for column, justify in [("name", "left"), ("params (MNIST-1D)", "right"), ("fits", "left"), ("description", "left")]:
        table.add_column(column, justify=justify)
    for row in rows:
        table.add_row(row["name"], f"{row['params_mnist1d']:,}", row["fits"], row["description"])
    out.print(table)
