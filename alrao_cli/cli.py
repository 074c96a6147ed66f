"""The ``alrao`` command line: parse, call one function of the layer below, print.

Tables go to standard output (unless ``--json``, which prints only JSON there);
progress and messages go to standard error. Errors a user can cause are one red line
and exit code 2; ``--debug`` shows their traceback.
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
import typing
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape

from alrao_cli.errors import AlraoUserError

app = typer.Typer(
    name="alrao",
    no_args_is_help=True,
    rich_markup_mode="rich",
    add_completion=False,
    help="Screen neural-network architectures without tuning their learning rate "
    "(Alrao: All Learning Rates At Once).",
)
# Piped output (a file, CliRunner, CI logs) gets room for the whole table rather than 80 columns.
out = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 120)
err = Console(stderr=True)

STUDY_PANEL = "Study"
DATA_PANEL = "Data"
BUDGET_PANEL = "Budget and method"
OUTPUT_PANEL = "Output"

# One definition per option, shared by `screen` and `compare`.
ArchArg = Annotated[
    Optional[list[str]],
    typer.Argument(
        help="Architectures: a zoo name ([cyan]cnn1d[/]), [cyan]path/to/file.py[/], "
        "[cyan]path/to/file.py:Name[/], or [cyan]torchvision:resnet18[/]. None: the whole zoo.",
        show_default=False,
    ),
]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config; flags override it.", rich_help_panel=STUDY_PANEL)]
ResumeOpt = Annotated[Optional[Path], typer.Option("--resume", help="Continue an interrupted run directory.", rich_help_panel=STUDY_PANEL)]
DataOpt = Annotated[Optional[str], typer.Option("--data", help="mnist1d (built in), cifar10, cifar100, mnist, fashion-mnist, svhn, imagefolder:PATH or python:FILE.py:FACTORY.", rich_help_panel=DATA_PANEL)]
DataDirOpt = Annotated[Optional[str], typer.Option("--data-dir", help="Folder holding torchvision datasets.", rich_help_panel=DATA_PANEL)]
DownloadOpt = Annotated[Optional[bool], typer.Option("--download/--no-download", help="Download a torchvision dataset if it is missing (needs a network).", rich_help_panel=DATA_PANEL, show_default=False)]
SubsetOpt = Annotated[Optional[int], typer.Option("--subset", help="Keep at most N training examples, for quick runs.", rich_help_panel=DATA_PANEL)]
ValFractionOpt = Annotated[Optional[float], typer.Option("--val-fraction", help="Share of the training split held out for validation (default 0.1).", rich_help_panel=DATA_PANEL)]
AugmentOpt = Annotated[Optional[bool], typer.Option("--augment/--no-augment", help="Light augmentation for images (crop + flip).", rich_help_panel=DATA_PANEL, show_default=False)]
WorkersOpt = Annotated[Optional[int], typer.Option("--workers", help="Data-loader worker processes.", rich_help_panel=DATA_PANEL)]
EpochsOpt = Annotated[Optional[int], typer.Option("--epochs", help="Epochs per run (default 10).", rich_help_panel=BUDGET_PANEL)]
StepsOpt = Annotated[Optional[int], typer.Option("--steps", help="Optimizer steps per run, instead of epochs.", rich_help_panel=BUDGET_PANEL)]
TimeOpt = Annotated[Optional[float], typer.Option("--time-budget", help="Seconds per run, instead of epochs.", rich_help_panel=BUDGET_PANEL)]
BatchOpt = Annotated[Optional[int], typer.Option("--batch-size", help="Minibatch size (default 32, as in the paper).", rich_help_panel=BUDGET_PANEL)]
LrMinOpt = Annotated[Optional[float], typer.Option("--lr-min", help="Smallest rate Alrao draws (default 1e-5).", rich_help_panel=BUDGET_PANEL)]
LrMaxOpt = Annotated[Optional[float], typer.Option("--lr-max", help="Largest rate Alrao draws (default 10).", rich_help_panel=BUDGET_PANEL)]
CopiesOpt = Annotated[Optional[int], typer.Option("--copies", help="Output-layer copies (default 10).", rich_help_panel=BUDGET_PANEL)]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Seed of everything (default 0).", rich_help_panel=BUDGET_PANEL)]
SeedsOpt = Annotated[Optional[int], typer.Option("--seeds", help="Repeat every run with this many seeds.", rich_help_panel=BUDGET_PANEL)]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps.", rich_help_panel=BUDGET_PANEL)]
BaselineOpt = Annotated[Optional[list[str]], typer.Option("--baseline", help="Add baseline columns: sgd-grid and/or adam (repeatable).", rich_help_panel=BUDGET_PANEL)]
GridOpt = Annotated[Optional[str], typer.Option("--grid", help="SGD rates: 1e-5,1e-3,0.1 or 1e-5:10:7 (7 log-spaced). Default: the decades 1e-5..10.", rich_help_panel=BUDGET_PANEL)]
HeadOpt = Annotated[Optional[str], typer.Option("--head", help="The output layer's qualified name (e.g. classifier.6), for every ARCH, where alrao cannot find it.", rich_help_panel=BUDGET_PANEL)]
AdamOpt = Annotated[Optional[bool], typer.Option("--adam/--no-adam", help="Compare with Adam at its default rate.", rich_help_panel=BUDGET_PANEL, show_default=False)]
FailFastOpt = Annotated[Optional[bool], typer.Option("--fail-fast", help="Stop at the first failed or diverged run.", rich_help_panel=STUDY_PANEL, show_default=False)]
CheckpointOpt = Annotated[Optional[int], typer.Option("--checkpoint-every", help="Also checkpoint every N steps inside long epochs.", rich_help_panel=STUDY_PANEL)]
OutOpt = Annotated[Optional[Path], typer.Option("--out", "-o", help="Run directory (default runs/<timestamp>-<command>).", rich_help_panel=OUTPUT_PANEL)]
PlotsOpt = Annotated[Optional[bool], typer.Option("--plots/--no-plots", help="Write PNG plots to the run directory.", rich_help_panel=OUTPUT_PANEL, show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print only machine-readable JSON on stdout.", rich_help_panel=OUTPUT_PANEL)]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the final table.", rich_help_panel=OUTPUT_PANEL)]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.", rich_help_panel=OUTPUT_PANEL)]


def _fail(error: AlraoUserError, debug: bool) -> None:
    if debug:
        raise error
    hint = f" [dim]({escape(error.hint)})[/]" if error.hint else ""
    err.print(f"[bold red]error:[/] {escape(error.message)}{hint}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


# Flags whose config key has another name; every other study flag is its config key.
_CONFIG_KEY_OF_FLAG = {"baseline": "baselines", "out_dir": "out"}
_NOT_CONFIG = {"archs", "config", "resume", "json_out", "quiet", "debug", "head"}


def _study_options(
    archs: ArchArg = None,
    config: ConfigOpt = None,
    resume: ResumeOpt = None,
    data: DataOpt = None,
    data_dir: DataDirOpt = None,
    download: DownloadOpt = None,
    subset: SubsetOpt = None,
    val_fraction: ValFractionOpt = None,
    augment: AugmentOpt = None,
    workers: WorkersOpt = None,
    epochs: EpochsOpt = None,
    steps: StepsOpt = None,
    time_budget: TimeOpt = None,
    batch_size: BatchOpt = None,
    lr_min: LrMinOpt = None,
    lr_max: LrMaxOpt = None,
    copies: CopiesOpt = None,
    seed: SeedOpt = None,
    seeds: SeedsOpt = None,
    device: DeviceOpt = None,
    baseline: BaselineOpt = None,
    grid: GridOpt = None,
    adam: AdamOpt = None,
    head: HeadOpt = None,
    fail_fast: FailFastOpt = None,
    checkpoint_every: CheckpointOpt = None,
    out_dir: OutOpt = None,
    plots: PlotsOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """The options of `screen` and `compare`, declared once (Typer reads this signature)."""


def _study_command(kind: str, doc: str, without: set[str]):
    """A Typer command running a study of ``kind``, offering every study option but ``without``."""

    def command(**options: Any) -> None:
        given = {
            _CONFIG_KEY_OF_FLAG.get(name, name): value
            for name, value in options.items()
            if name not in _NOT_CONFIG and value is not None and value != []
        }
        if options["archs"]:
            given["archs"] = list(options["archs"])
        if "out" in given:
            given["out"] = str(given["out"])
        if options["head"]:
            given["heads"] = {"*": options["head"]}
        _run_study(kind, options["resume"], options["config"], given, options["json_out"], options["quiet"], options["debug"])

    hints = typing.get_type_hints(_study_options, include_extras=True)
    signature = inspect.signature(_study_options)
    command.__signature__ = signature.replace(
        parameters=[
            p.replace(annotation=hints[p.name]) for p in signature.parameters.values() if p.name not in without
        ]
    )
    command.__annotations__ = {name: hint for name, hint in hints.items() if name not in without}
    command.__doc__ = doc
    command.__name__ = kind
    return command


def _run_study(kind: str, resume: Path | None, config_path: Path | None, overrides: dict, json_out: bool, quiet: bool, debug: bool) -> None:
    from alrao_cli import summary
    from alrao_cli.config import build_config, load_config_file
    from alrao_cli.progress import RichObserver
    from alrao_cli.study import run_study

    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(message)s")
    try:
        file_values = load_config_file(config_path) if config_path else None
        config = build_config(file_values, overrides)
        if resume is not None and (config_path or overrides):
            err.print("[yellow]note:[/] --resume continues the run as saved; other arguments and options are ignored")
        if json_out or quiet:
            outcome = run_study(config, kind, resume=resume)
        else:
            with RichObserver(err) as observer:
                outcome = run_study(config, kind, resume=resume, observer=observer)
        summary.print_outcome(outcome, out=out, err=err, json_out=json_out, quiet=quiet)
    except AlraoUserError as error:
        _fail(error, debug)
    raise typer.Exit(outcome.exit_code)


# Help texts: one line per paragraph (rich re-wraps them), examples one per line.
SCREEN_HELP = """Train every architecture once with Alrao-SGD and rank them by validation loss.

    No learning rate to tune: each feature draws its own rate log-uniformly in \\[lr-min, lr-max] and the output layer is averaged over copies with log-spaced rates. Results are saved as each architecture finishes; Ctrl-C stops cleanly and prints how to resume.

    Exit code: 0 when every architecture finished, 1 when some failed or diverged, 2 for a usage error, 130 when interrupted.

    [bold]Examples[/]

      alrao screen                                   [dim]# the zoo on MNIST-1D, on the CPU[/]
      alrao screen mlp cnn1d my_models.py:Net --epochs 20
      alrao screen torchvision:resnet18 --data cifar10 --data-dir ~/data --device cuda
      alrao screen --baseline sgd-grid --baseline adam   [dim]# add tuned-SGD and Adam columns[/]
      alrao screen --json | jq '.ranking[0]'
    """

COMPARE_HELP = """Run Alrao next to single-rate SGD grids and Adam: how close does it get?

    For each architecture: Alrao-SGD, plain SGD at every rate of the grid, and Adam, on the same data and budget. Shows each method's best validation loss, Alrao's gap to the best-tuned SGD, and whether the two rankings agree (Kendall's tau, Spearman's rho).

    [bold]Examples[/]

      alrao compare mlp cnn1d --grid 1e-4:1:5 --epochs 5
      alrao compare --seeds 3 --no-adam --json > fidelity.json
    """

app.command("screen")(_study_command("screen", SCREEN_HELP, without={"adam"}))
app.command("compare")(_study_command("compare", COMPARE_HELP, without={"baseline"}))


@app.command()
def check(
    archs: ArchArg = None,
    data: DataOpt = None,
    data_dir: DataDirOpt = None,
    steps: Annotated[int, typer.Option("--steps", min=2, help="Alrao-SGD steps of the overfit check.")] = 5,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the checks.")] = 0,
    junit_xml: Annotated[Optional[Path], typer.Option("--junit-xml", help="Also write a JUnit XML report here (for CI).")] = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Smoke-check model code in seconds: builds, runs, wraps, trains, saves, is deterministic.

    Each architecture goes through six items, stopping at its first failure: build,
    forward ([batch, num_classes], finite), wrap (output layer found, per-feature rates),
    train (a few Alrao-SGD steps lower the loss, every parameter gets a gradient),
    serialize (state_dict round trip) and deterministic (same seed, same numbers).
    Exit code 0 only if every architecture passed. See docs/ci.md for a CI job.

    [bold]Examples[/]

      alrao check                                  [dim]# the zoo, on MNIST-1D shapes[/]
      alrao check models/*.py --junit-xml reports/alrao.xml
    """
    import time

    import torch

    from alrao_cli.check import run_checks
    from alrao_cli.check_report import check_json, check_table, failure_lines, write_junit
    from alrao_cli.data import DataSpec, load_data
    from alrao_cli.registry import list_zoo

    # A check works on 16 examples: one thread is faster than two, and never stalls
    # behind whatever else the CI machine runs.
    torch.set_num_threads(1)
    try:
        start = time.perf_counter()
        loaded = load_data(DataSpec(source=data or "mnist1d", data_dir=data_dir, seed=seed))
        names = list(archs) if archs else [entry.name for entry in list_zoo()]
        results = run_checks(names, loaded, steps=steps, seed=seed)
        seconds = time.perf_counter() - start
    except AlraoUserError as error:
        _fail(error, debug)
    if junit_xml is not None:
        write_junit(junit_xml, results)
    if json_out:
        out.print_json(data=check_json(results, seconds))
    else:
        out.print(check_table(results, seconds))
        for line in failure_lines(results):
            out.print(f"[red]✗[/] {escape(line)}", highlight=False)
    raise typer.Exit(0 if all(result.passed for result in results) else 1)


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by screen or compare.")],
    output_format: Annotated[str, typer.Option("--format", "-f", help="table, json, csv or markdown.")] = "table",
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Redraw the PNG plots.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Redraw the tables (and plots) of a finished or interrupted run, without training.

    [bold]Examples[/]

      alrao report runs/20261125-101500-screen
      alrao report runs/20261125-101500-compare --format markdown >> RESULTS.md
    """
    from alrao_cli import summary
    from alrao_cli.results import load_study

    try:
        if output_format not in summary.FORMATS:
            raise AlraoUserError(
                f"--format {output_format!r} is not a format", hint=f"use one of {', '.join(summary.FORMATS)}"
            )
        study = load_study(run_dir)
        summary.print_report(study, run_dir, output_format, out=out)
        if plots:
            for path in summary.write_plots(study, run_dir):
                err.print(f"wrote {escape(str(path))}")
    except AlraoUserError as error:
        _fail(error, debug)


@app.command()
def models(
    pattern: Annotated[str, typer.Argument(help="Filter names with a glob, e.g. 'res*'.")] = "*",
    torchvision_models: Annotated[bool, typer.Option("--torchvision", help="List torchvision's classifiers instead.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """List the built-in zoo (name, parameters, data shapes it fits) or torchvision's models.

    [bold]Examples[/]

      alrao models
      alrao models --torchvision 'resnet*'
    """
    from alrao_cli import summary

    summary.print_models(pattern, torchvision_models, json_out, out=out)


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the example config.")] = Path("alrao.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented example config (every option with its default).

    [bold]Example[/]

      alrao init screen.yaml && alrao screen --config screen.yaml
    """
    from alrao_cli.config import example_config_yaml

    if path.exists() and not force:
        _fail(AlraoUserError(f"{path} already exists", hint="pass --force to overwrite it"), False)
    path.write_text(example_config_yaml())
    err.print(f"wrote {escape(str(path))}: edit it, then run [bold]alrao screen --config {escape(str(path))}[/]")


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]")
        sys.exit(130)

