"""The ``alrao`` command line: parse, call one function of the layer below, print.

Tables go to standard output (unless ``--json``, which prints only JSON there);
progress and messages go to standard error. Errors a user can cause are one red line
and exit code 2; ``--debug`` shows their traceback.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import sys
import typing
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape

from alrao_cli.config.schema import help_for
from alrao_cli.errors import AlraoUserError

if typing.TYPE_CHECKING:
    from alrao_cli.config.schema import StudyConfig

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
        metavar="ARCH",
    ),
]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config; flags override it.", rich_help_panel=STUDY_PANEL)]
ResumeOpt = Annotated[Optional[Path], typer.Option("--resume", help="Continue an interrupted run directory.", rich_help_panel=STUDY_PANEL)]
DataOpt = Annotated[Optional[str], typer.Option("--data", help="mnist1d (built in), cifar10, cifar100, mnist, fashion-mnist, svhn, imagefolder:PATH or python:FILE.py:FACTORY.", rich_help_panel=DATA_PANEL)]
DataDirOpt = Annotated[Optional[str], typer.Option("--data-dir", help="Folder holding torchvision datasets.", rich_help_panel=DATA_PANEL)]
DownloadOpt = Annotated[Optional[bool], typer.Option("--download/--no-download", help="Download a torchvision dataset if it is missing (needs a network).", rich_help_panel=DATA_PANEL, show_default=False)]
SubsetOpt = Annotated[Optional[int], typer.Option("--subset", help="Keep at most N training examples, for quick runs.", rich_help_panel=DATA_PANEL)]
ValFractionOpt = Annotated[Optional[float], typer.Option("--val-fraction", help=help_for("val_fraction"), rich_help_panel=DATA_PANEL)]
AugmentOpt = Annotated[Optional[bool], typer.Option("--augment/--no-augment", help="Light augmentation for images (crop + flip).", rich_help_panel=DATA_PANEL, show_default=False)]
LoaderWorkersOpt = Annotated[Optional[int], typer.Option("--loader-workers", help=help_for("loader_workers"), rich_help_panel=DATA_PANEL)]
EpochsOpt = Annotated[Optional[int], typer.Option("--epochs", help=help_for("epochs").replace("null = ", "default "), rich_help_panel=BUDGET_PANEL)]
StepsOpt = Annotated[Optional[int], typer.Option("--steps", help="Optimizer steps per run, instead of epochs.", rich_help_panel=BUDGET_PANEL)]
TimeOpt = Annotated[Optional[float], typer.Option("--time-budget", help="Seconds per run, instead of epochs.", rich_help_panel=BUDGET_PANEL)]
BatchOpt = Annotated[Optional[int], typer.Option("--batch-size", help=help_for("batch_size"), rich_help_panel=BUDGET_PANEL)]
LrMinOpt = Annotated[Optional[float], typer.Option("--lr-min", help=help_for("lr_min"), rich_help_panel=BUDGET_PANEL)]
LrMaxOpt = Annotated[Optional[float], typer.Option("--lr-max", help=help_for("lr_max"), rich_help_panel=BUDGET_PANEL)]
CopiesOpt = Annotated[Optional[int], typer.Option("--copies", help=help_for("copies"), rich_help_panel=BUDGET_PANEL)]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help=help_for("seed"), rich_help_panel=BUDGET_PANEL)]
SeedsOpt = Annotated[Optional[int], typer.Option("--seeds", help="Repeat every run with this many seeds.", rich_help_panel=BUDGET_PANEL)]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps.", rich_help_panel=BUDGET_PANEL)]
BaselineOpt = Annotated[Optional[list[str]], typer.Option("--baseline", help="Add baseline columns (repeatable): sgd-grid (SGD at every --grid rate) and/or adam (Adam at 1e-3).", rich_help_panel=BUDGET_PANEL)]
GridOpt = Annotated[Optional[str], typer.Option("--grid", help="SGD rates of compare and of --baseline sgd-grid: 1e-5,1e-3,0.1 or 1e-5:10:7 (7 log-spaced). Default: the decades 1e-5..10.", rich_help_panel=BUDGET_PANEL)]
HeadOpt = Annotated[Optional[str], typer.Option("--head", help="The output layer's qualified name (e.g. classifier.6), for every ARCH, where alrao cannot find it.", rich_help_panel=BUDGET_PANEL)]
AdamOpt = Annotated[Optional[bool], typer.Option("--adam/--no-adam", help="Compare with Adam at its default rate.", rich_help_panel=BUDGET_PANEL, show_default=False)]
FailFastOpt = Annotated[Optional[bool], typer.Option("--fail-fast", help="Stop at the first failed run or diverged Alrao run (a diverged baseline rate goes on); exit code 1.", rich_help_panel=STUDY_PANEL, show_default=False)]
CheckpointOpt = Annotated[Optional[int], typer.Option("--checkpoint-every", help="Also checkpoint every N steps inside long epochs (by default: every 10 minutes, and at every epoch end).", rich_help_panel=STUDY_PANEL)]
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
    loader_workers: LoaderWorkersOpt = None,
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
    from alrao_cli.report import console as summary
    from alrao_cli.config.schema import build_config
    from alrao_cli.config.yaml_io import load_config_file
    from alrao_cli.report.live import RichObserver
    from alrao_cli.study.driver import run_study

    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(message)s")
    try:
        file_values = load_config_file(config_path) if config_path else None
        config = build_config(file_values, overrides)
        if resume is not None and (config_path or overrides):
            err.print("[yellow]note:[/] --resume continues the run as saved; other arguments and options are ignored")
        elif kind == "screen" and "grid" in overrides and not _tunes_over_grid(config.baselines):
            err.print("[yellow]note:[/] --grid only sets the rates of --baseline sgd-grid; without it no SGD run is made")
        if json_out or quiet:
            # Standard output is for the JSON alone: whatever a model file prints goes to stderr.
            with contextlib.redirect_stdout(sys.stderr) if json_out else contextlib.nullcontext():
                outcome = run_study(config, kind, resume=resume)
        else:
            with RichObserver(err) as observer:
                outcome = run_study(config, kind, resume=resume, observer=observer)
        summary.print_outcome(outcome, out=out, err=err, json_out=json_out, quiet=quiet)
    except AlraoUserError as error:
        _fail(error, debug)
    raise typer.Exit(outcome.exit_code)


def _tunes_over_grid(baselines: tuple[str, ...]) -> bool:
    """Whether a screen's ``--baseline`` names ask for a method run at every rate of ``--grid``."""
    from alrao_cli.study.methods import baseline_methods

    return any(method.tuned_over_grid and method.baseline_option in baselines for method in baseline_methods())


# Help texts: one line per paragraph (rich re-wraps them), examples one per line.
SCREEN_HELP = """Train every architecture once with Alrao-SGD and rank them by validation loss.

    No learning rate to tune: each feature draws its own rate log-uniformly in \\[lr-min, lr-max] and the output layer is averaged over copies with log-spaced rates. Results are saved as each architecture finishes; Ctrl-C stops cleanly and prints how to resume.

    Exit code: 0 when every architecture finished (a diverged baseline rate does not count), 1 when a run failed, an Alrao run diverged or --fail-fast stopped, 2 for a usage error, 130 when interrupted (143 on SIGTERM, handled like Ctrl-C).

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


def _check_config(archs: list[str] | None, config_path: Path | None, head: str | None, flags: dict[str, Any]) -> StudyConfig:
    """The options `check` shares with `screen` (ARCHs, data, seed, heads, model_kwargs), read as `screen` reads them.

    A config written for a screen works unchanged: its training options (epochs,
    lr_min, ...) are checked but play no part in a check.
    """
    from alrao_cli.config.schema import build_config
    from alrao_cli.config.yaml_io import load_config_file

    given = {name: value for name, value in flags.items() if value is not None}
    if archs:
        given["archs"] = list(archs)
    if head:
        given["heads"] = {"*": head}
    return build_config(load_config_file(config_path) if config_path else None, given)


@app.command()
def check(
    archs: ArchArg = None,
    config: ConfigOpt = None,
    data: DataOpt = None,
    data_dir: DataDirOpt = None,
    download: DownloadOpt = None,
    subset: SubsetOpt = None,
    val_fraction: ValFractionOpt = None,
    head: HeadOpt = None,
    steps: Annotated[int, typer.Option("--steps", min=2, help="Alrao-SGD steps of the overfit check.")] = 5,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed of the checks (default 0, or the config's seed).")] = None,
    junit_xml: Annotated[Optional[Path], typer.Option("--junit-xml", help="Also write a JUnit XML report here (for CI).")] = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Smoke-check model code in seconds: builds, runs, wraps, trains, saves, is deterministic.

    Each architecture goes through six items, stopping at its first failure: build, forward (\\[batch, num_classes], finite), wrap (output layer found, per-feature rates), train (a few Alrao-SGD steps lower the loss, every parameter gets a gradient), serialize (state_dict round trip) and deterministic (same seed, same numbers). A screen's config (--config) gives the ARCHs, data, heads and model_kwargs.

    Exit code: 0 only if every architecture passed, 1 if some failed, 2 for a usage error. See docs/ci.md for a CI job.

    [bold]Examples[/]

      alrao check                                  [dim]# the zoo, on MNIST-1D shapes[/]
      alrao check models/\\[!_]*.py --junit-xml reports/alrao.xml
      alrao check my_models.py:Net --head classifier.3
    """
    import time
    from dataclasses import replace

    import torch

    from alrao_cli.study.check import run_checks
    from alrao_cli.report.check import check_json, check_junit_path, check_table, message_lines, write_junit
    from alrao_cli.data.load import load_data
    from alrao_cli.study.plan import data_spec_of, skipped_note, zoo_fitting

    # A check works on 16 examples: one thread is faster than two, and never stalls
    # behind whatever else the CI machine runs.
    torch.set_num_threads(1)
    try:
        start = time.perf_counter()
        flags = {
            "data": data, "data_dir": data_dir, "download": download,
            "subset": subset, "val_fraction": val_fraction, "seed": seed,
        }
        study = _check_config(archs, config, head, flags)
        if junit_xml is not None:
            check_junit_path(junit_xml)  # now, not after every check has run
        # No augmentation: a random crop would change the one fixed batch between runs.
        loaded = load_data(replace(data_spec_of(study), augment=False))
        names, skipped = (list(study.archs), ()) if study.archs else zoo_fitting(loaded.info.input_shape)
        note = skipped_note(skipped, loaded.info.input_shape)
        if note:  # on stderr: --json output stays clean
            err.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
        # Standard output is for the JSON alone: whatever a model file prints goes to stderr.
        with contextlib.redirect_stdout(sys.stderr) if json_out else contextlib.nullcontext():
            results = run_checks(
                names, loaded, steps=steps, seed=study.seed, model_kwargs=study.model_kwargs, heads=study.heads
            )
        seconds = time.perf_counter() - start
        if json_out:
            out.print_json(data=check_json(results, seconds))
        else:
            out.print(check_table(results, seconds))
            for line in message_lines(results):
                out.print(line, soft_wrap=True, emoji=False, highlight=False)
        if junit_xml is not None:
            write_junit(junit_xml, results)
    except AlraoUserError as error:
        _fail(error, debug)
    raise typer.Exit(0 if all(result.passed for result in results) else 1)


class ReportFormat(str, Enum):
    """The formats of `alrao report` (summary.FORMATS), as a choice the option's parser checks."""

    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by screen or compare.")],
    output_format: Annotated[ReportFormat, typer.Option("--format", "-f", help="table, json, csv or markdown.")] = ReportFormat.table,
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
        if plots or plots_dir is not None:
            for path in summary.write_plots(study, plots_dir or run_dir):
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

    A pattern that matches nothing is a usage error (exit code 2) naming the closest names.

    [bold]Examples[/]

      alrao models
      alrao models --torchvision 'resnet*'
    """
    from alrao_cli.report import console as summary

    try:
        summary.print_models(pattern, torchvision_models, json_out, out=out)
    except AlraoUserError as error:
        _fail(error, debug=False)


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the example config.")] = Path("alrao.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented example config (every option with its default).

    [bold]Example[/]

      alrao init screen.yaml && alrao screen --config screen.yaml
    """
    from alrao_cli.config.yaml_io import example_config_yaml

    if path.exists() and not force:
        _fail(AlraoUserError(f"{path} already exists", hint="pass --force to overwrite it"), False)
    path.write_text(example_config_yaml())
    err.print(f"wrote {escape(str(path))}: edit it, then run [bold]alrao screen --config {escape(str(path))}[/]")


# click's exceptions, from whichever click typer uses (recent typers bundle their own).
_click_exceptions = sys.modules[typer.BadParameter.__module__]
_NoArgsIsHelpError = getattr(_click_exceptions, "NoArgsIsHelpError", ())  # click >= 8.2


def main() -> None:
    """Console-script entry point: a mistyped flag or value is one red line, exit code 2."""
    try:
        code = app(prog_name="alrao", standalone_mode=False)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]")
        sys.exit(130)
    except _click_exceptions.UsageError as error:
        if isinstance(error, _NoArgsIsHelpError):
            sys.exit(error.exit_code)  # the help is already printed
        command = error.ctx.command_path if error.ctx is not None else "alrao"
        err.print(
            f"[bold red]error:[/] {escape(error.format_message())} [dim](see {escape(command)} --help)[/]",
            highlight=False, soft_wrap=True,
        )
        sys.exit(error.exit_code)
    sys.exit(code or 0)

