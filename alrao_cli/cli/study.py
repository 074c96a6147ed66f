"""``alrao screen`` and ``alrao compare``: one study command each, built from one option list."""

from __future__ import annotations

import inspect
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from alrao_cli.errors import AlraoUserError
from alrao_cli.cli.app import app, err, fail, logs_to_stderr, results_console
from alrao_cli.cli.options import (
    ArchArg,
    ConfigOpt,
    ForceOpt,
    ResumeOpt,
    DataOpt,
    DataDirOpt,
    DownloadOpt,
    SubsetOpt,
    ValFractionOpt,
    AugmentOpt,
    LoaderWorkersOpt,
    EpochsOpt,
    StepsOpt,
    TimeOpt,
    TimeGraceOpt,
    BatchOpt,
    LrMinOpt,
    LrMaxOpt,
    CopiesOpt,
    SeedOpt,
    SeedsOpt,
    DeviceOpt,
    BaselineOpt,
    MethodOpt,
    MethodsOpt,
    GridOpt,
    HeadOpt,
    AdamOpt,
    MetaArchOpt,
    MetaItersOpt,
    ScheduleNetOpt,
    FailFastOpt,
    CheckpointOpt,
    OutOpt,
    PlotsOpt,
    JsonOpt,
    QuietOpt,
    DebugOpt,
    WorkersOpt,
    ThreadsPerRunOpt,
    RayAddressOpt,
    CpusPerRunOpt,
    GpusPerRunOpt,
    RetriesOpt,
    IsolateOpt,
)

if TYPE_CHECKING:
    from alrao_cli.config.schema import ExecutionConfig, StudyConfig

if typing.TYPE_CHECKING:
    pass


# Flags whose config key has another name; every other study flag is its config key.
_CONFIG_KEY_OF_FLAG = {"baseline": "baselines", "out_dir": "out"}
_NOT_CONFIG = {"archs", "config", "resume", "force", "json_out", "quiet", "debug", "head", "methods"}
# Where the runs execute: not part of the study (config.schema.ExecutionConfig), so a
# --resume takes them from its own flags.
_EXECUTION = (
    "workers", "threads_per_run", "ray_address", "cpus_per_run", "gpus_per_run", "retries", "isolate", "time_grace",
)


def _study_options(
    archs: ArchArg = None,
    config: ConfigOpt = None,
    resume: ResumeOpt = None,
    force: ForceOpt = False,
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
    time_grace: TimeGraceOpt = None,
    batch_size: BatchOpt = None,
    lr_min: LrMinOpt = None,
    lr_max: LrMaxOpt = None,
    copies: CopiesOpt = None,
    seed: SeedOpt = None,
    seeds: SeedsOpt = None,
    device: DeviceOpt = None,
    method: MethodOpt = None,
    methods: MethodsOpt = None,
    baseline: BaselineOpt = None,
    grid: GridOpt = None,
    adam: AdamOpt = None,
    schedule_net: ScheduleNetOpt = None,
    meta_arch: MetaArchOpt = None,
    meta_iters: MetaItersOpt = None,
    head: HeadOpt = None,
    fail_fast: FailFastOpt = None,
    isolate: IsolateOpt = None,
    checkpoint_every: CheckpointOpt = None,
    workers: WorkersOpt = None,
    threads_per_run: ThreadsPerRunOpt = None,
    ray_address: RayAddressOpt = None,
    cpus_per_run: CpusPerRunOpt = None,
    gpus_per_run: GpusPerRunOpt = None,
    retries: RetriesOpt = None,
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
            if name not in _NOT_CONFIG and name not in _EXECUTION and value is not None and value != []
        }
        execution = {name: options[name] for name in _EXECUTION}
        if options["archs"]:
            given["archs"] = list(options["archs"])
        if "out" in given:
            given["out"] = str(given["out"])
        if options["head"]:
            given["heads"] = {"*": options["head"]}
        if options.get("methods"):
            given.update(split_compare_methods(options["methods"]))
        _run_study(
            kind, options["resume"], options["force"], options["config"], given, execution,
            options["json_out"], options["quiet"], options["debug"],
        )

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


def _run_study(
    kind: str, resume: Path | None, force: bool, config_path: Path | None, overrides: dict, execution_flags: dict,
    json_out: bool, quiet: bool, debug: bool,
) -> None:
    from alrao_cli.report import console as summary
    from alrao_cli.config.schema import build_config, build_execution
    from alrao_cli.config.yaml_io import load_config_file
    from alrao_cli.report.live import RichObserver
    from alrao_cli.study.driver import run_study
    from alrao_cli.study.torch_startup import skip_dynamo_import_for_optimizers

    skip_dynamo_import_for_optimizers()
    with logs_to_stderr(debug):
        try:
            file_values = load_config_file(config_path) if config_path else None
            config = build_config(file_values, overrides)
            execution = build_execution(execution_flags)
            if force and resume is None:
                raise AlraoUserError("--force only applies with --resume", hint="add --resume RUN_DIR, or drop --force")
            if resume is not None and (config_path or overrides):
                err.print("[yellow]note:[/] --resume continues the run as saved; other arguments and options are ignored")
            else:
                for note in _settings_that_change_nothing(kind, overrides, config, execution):
                    err.print(f"[yellow]note:[/] {note}")
            with results_console(json_out) as out:  # --json: standard output is for the JSON alone
                if json_out or quiet:
                    outcome = run_study(config, kind, resume=resume, force=force, execution=execution)
                else:
                    with RichObserver(err) as observer:
                        outcome = run_study(
                            config, kind, resume=resume, force=force, observer=observer, execution=execution
                        )
                summary.print_outcome(outcome, out=out, err=err, json_out=json_out, quiet=quiet)
        except AlraoUserError as error:
            fail(error, debug)
        except KeyboardInterrupt:  # before the study took over Ctrl-C: while loading data, checking models
            err.print(f"[yellow]interrupted[/] while the {kind} was starting: nothing trained, nothing saved")
            raise typer.Exit(130) from None
    raise typer.Exit(outcome.exit_code)


def _settings_that_change_nothing(kind: str, overrides: dict, config: StudyConfig, execution: ExecutionConfig) -> list[str]:
    """What the user set that this study will not use, each as a note, so that nothing is ignored silently."""
    notes = []
    if kind == "screen" and "grid" in overrides and not _tunes_over_grid(config.method, config.baselines):
        notes.append("--grid only sets the rates of methods tuned over it (--baseline sgd-grid, --method sgd, ...); "
                     "none runs in this screen, so it changes nothing")
    if execution.time_grace is not None and config.time_budget is None:
        notes.append("--time-grace only applies with --time-budget: runs without a time budget have no time limit")
    return notes


def _tunes_over_grid(screened: tuple[str, ...], baselines: tuple[str, ...]) -> bool:
    """Whether a screen runs a method at every rate of ``--grid``: screened, or as a ``NAME-grid`` baseline."""
    from alrao_cli.study.methods import baseline_methods

    return any(
        method.tuned_over_grid and (method.name in screened or method.baseline_option in baselines)
        for method in baseline_methods()
    )


# Help texts: one line per paragraph (rich re-wraps them), examples one per line, each short
# enough for 80 columns (a wrapped command is hard to copy).
SCREEN_HELP = """Train every architecture once with Alrao-SGD and rank them by validation loss.

    No learning rate to tune: each feature draws its own rate log-uniformly in \\[lr-min, lr-max] and the output layer is averaged over copies with log-spaced rates. Results are saved as each architecture finishes; Ctrl-C stops cleanly and prints how to resume.

    Exit code: 0 when every architecture finished (one diverged rate of a grid does not count), 1 when a run failed, a screened method run once (Alrao) diverged, a screened grid diverged at every rate, or --fail-fast stopped, 2 for a usage error, 130 when interrupted (143 on SIGTERM, handled like Ctrl-C).

    [bold]Examples[/]

      alrao screen                        [dim]# the zoo on MNIST-1D, on the CPU[/]
      alrao screen mlp cnn1d my_models.py:Net --epochs 20
      alrao screen torchvision:resnet18 --data cifar10 --device cuda
      alrao screen --baseline sgd-grid --baseline adam   [dim]# + tuned SGD, Adam[/]
      alrao screen --workers 2            [dim]# two at once, on Ray (docs/scale.md)[/]
      alrao screen --json | jq '.ranking[0]'
    """

COMPARE_HELP = """Run Alrao next to single-rate SGD grids and Adam: how close does it get?

    For each architecture: Alrao-SGD, plain SGD at every rate of the grid, and Adam, on the same data and budget. Shows each method's best validation loss, Alrao's gap to the best-tuned SGD, and whether the two rankings agree (Kendall's tau, Spearman's rho).

    [bold]Examples[/]

      alrao compare mlp cnn1d --grid 1e-4:1:5 --epochs 5
      alrao compare --seeds 3 --no-adam --json > fidelity.json
    """

def split_compare_methods(text: str) -> dict[str, list[str]]:
    """``--methods a,b,c`` as config keys: the first method run once is the one measured
    (``method``), every other is a baseline (``baselines``); ``NAME-grid`` is a grid."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    measured = next((name for name in names if not name.endswith("-grid")), None)
    if measured is None:
        raise typer.BadParameter("name at least one method run once (e.g. alrao) to measure", param_hint="--methods")
    return {"method": [measured], "baselines": [name for name in names if name != measured]}


app.command("screen")(_study_command("screen", SCREEN_HELP, without={"adam", "methods"}))
app.command("compare")(_study_command("compare", COMPARE_HELP, without={"baseline", "method"}))


