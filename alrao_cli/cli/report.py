"""``alrao report``: redraw a run directory's tables and plots from its saved results."""

from __future__ import annotations

import shlex
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from alrao_cli.errors import AlraoUserError
from alrao_cli.cli.app import app, err, fail, out
from alrao_cli.cli.options import DebugOpt


class ReportFormat(str, Enum):
    """The formats of `alrao report` (summary.FORMATS), as a choice the option's parser checks."""

    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"


# The choices in the text, not in the type label: <table|json|csv|markdown> breaks mid-word at 80 columns.
_FORMATS = [choice.value for choice in ReportFormat]
_FORMAT_HELP = f"Output format: {', '.join(_FORMATS[:-1])} or {_FORMATS[-1]}."


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A run directory written by screen or compare.")],
    output_format: Annotated[ReportFormat, typer.Option("--format", "-f", metavar="FORMAT", help=_FORMAT_HELP)] = ReportFormat.table,
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Redraw the PNG plots into the run directory.")] = False,
    plots_dir: Annotated[Optional[Path], typer.Option("--plots-dir", help="Redraw the PNG plots into this folder instead (e.g. when the run directory is read-only).")] = None,
    debug: DebugOpt = False,
) -> None:
    """Redraw the tables (and plots) of a finished or interrupted run, without training.

    [bold]Examples[/]

      alrao report runs/20261125-101500-screen
      alrao report runs/20261125-101500-compare --format markdown >> RESULTS.md
      alrao report /shared/runs/20261125-101500-compare --plots-dir plots/
    """
    from alrao_cli.report import console as summary
    from alrao_cli.results.records import load_study

    try:
        study = load_study(run_dir)
        summary.print_report(study, run_dir, output_format.value, out=out)
        if study.interrupted or study.finished is None:  # on stderr, whatever the format: the ranking is partial
            command = f"alrao {study.kind} --resume {shlex.quote(str(run_dir))}"
            state = (
                "interrupted:[/] " if study.interrupted
                else "unfinished:[/] it never saved its end (killed, or still running); "
            )
            err.print(
                f"[yellow]{state}{len(study.runs)} run(s) finished; resume with: {escape(command)}",
                highlight=False,
                soft_wrap=True,  # a command to copy: never wrapped
            )
        if plots or plots_dir is not None:
            for path in summary.write_plots(study, plots_dir or run_dir):
                err.print(f"wrote {escape(str(path))}")
    except AlraoUserError as error:
        fail(error, debug)


