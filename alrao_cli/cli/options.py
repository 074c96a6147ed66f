"""The options shared by ``screen``, ``compare`` and ``check``, declared once.

Help texts read an option's line and its default from the config schema (:func:`described`),
so a default changed there shows here at once. Every default is shown one way, the way Typer
shows the defaults it knows itself: ``[default: X]`` after the text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape

from alrao_cli.config.schema import COMPARE_BASELINES, DEFAULTS, default_for_help, help_for

STUDY_PANEL = "Study"
DATA_PANEL = "Data"
BUDGET_PANEL = "Budget and method"
OUTPUT_PANEL = "Output"
PARALLEL_PANEL = "Parallel runs (Ray)"
CHECK_PANEL = "Checks"


def shown_default(text: str, default: Any) -> str:
    """``text`` followed by ``default`` as Typer shows a default it knows (dim ``[default: X]``):
    for options whose parameter default is None (not given, so that a config file's value
    stands), which Typer cannot show itself."""
    if default is None or default == ():
        return text
    if isinstance(default, (tuple, list)):
        default = ",".join(plain_value(item) for item in default)
    else:
        default = plain_value(default)
    # A paragraph of its own (Typer shows it on the next line): never wrapped inside, as Typer's own isn't.
    return f"{text}\n\n[dim]{escape(f'[default: {default}]')}[/]"


def plain_value(value: object) -> str:
    """A default as the command line writes it: a float in its shortest form (``1e-05``, ``0.1``)."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def described(name: str, text: str | None = None, *, flag_pair: bool = False) -> str:
    """The ``--help`` of the flag of config option ``name``: ``text`` (by default the schema's
    line, :func:`help_for`) and the schema's default (:func:`default_for_help`).

    A flag pair (``--plots/--no-plots``) states its default as the flag that is on by default
    (``plots``, ``no-plots``), as Typer does; a lone flag is off by default and states none.
    """
    default = default_for_help(name)
    if isinstance(default, bool):
        default = (name if default else f"no-{name}").replace("_", "-") if flag_pair else None
    return shown_default(help_for(name) if text is None else text, default)


# One definition per option, shared by `screen` and `compare`.
ArchArg = Annotated[
    Optional[list[str]],
    typer.Argument(
        help=shown_default(
            "Architectures: a zoo name ([cyan]cnn1d[/]), [cyan]path/to/file.py[/], "
            "[cyan]path/to/file.py:Name[/], or [cyan]torchvision:resnet18[/].",
            "the whole zoo",
        ),
        show_default=False,
        metavar="ARCH",
    ),
]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config; flags override it.", rich_help_panel=STUDY_PANEL)]
ForceOpt = Annotated[bool, typer.Option("--force", help="With --resume: train again, from scratch, the architectures whose model file changed since the run began (without it, such a resume is refused).", rich_help_panel=STUDY_PANEL)]
ResumeOpt = Annotated[Optional[Path], typer.Option("--resume", help="Continue an interrupted run directory.", rich_help_panel=STUDY_PANEL)]
DataOpt = Annotated[Optional[str], typer.Option("--data", help=described("data"), rich_help_panel=DATA_PANEL)]
DataDirOpt = Annotated[Optional[str], typer.Option("--data-dir", help=described("data_dir"), rich_help_panel=DATA_PANEL)]
DownloadOpt = Annotated[Optional[bool], typer.Option("--download/--no-download", help=described("download", flag_pair=True), rich_help_panel=DATA_PANEL, show_default=False)]
SubsetOpt = Annotated[Optional[int], typer.Option("--subset", help=described("subset", "Keep at most N training examples, for quick runs."), rich_help_panel=DATA_PANEL)]
ValFractionOpt = Annotated[Optional[float], typer.Option("--val-fraction", help=described("val_fraction"), rich_help_panel=DATA_PANEL)]
AugmentOpt = Annotated[Optional[bool], typer.Option("--augment/--no-augment", help=described("augment", flag_pair=True), rich_help_panel=DATA_PANEL, show_default=False)]
LoaderWorkersOpt = Annotated[Optional[int], typer.Option("--loader-workers", help=described("loader_workers"), rich_help_panel=DATA_PANEL)]
EpochsOpt = Annotated[Optional[int], typer.Option("--epochs", help=described("epochs"), rich_help_panel=BUDGET_PANEL)]
StepsOpt = Annotated[Optional[int], typer.Option("--steps", help=described("steps"), rich_help_panel=BUDGET_PANEL)]
TimeOpt = Annotated[Optional[float], typer.Option("--time-budget", help=described("time_budget"), rich_help_panel=BUDGET_PANEL)]
TimeGraceOpt = Annotated[Optional[float], typer.Option("--time-grace", help=described("time_grace"), rich_help_panel=BUDGET_PANEL, show_default=False)]
BatchOpt = Annotated[Optional[int], typer.Option("--batch-size", help=described("batch_size"), rich_help_panel=BUDGET_PANEL)]
LrMinOpt = Annotated[Optional[float], typer.Option("--lr-min", help=described("lr_min"), rich_help_panel=BUDGET_PANEL)]
LrMaxOpt = Annotated[Optional[float], typer.Option("--lr-max", help=described("lr_max"), rich_help_panel=BUDGET_PANEL)]
CopiesOpt = Annotated[Optional[int], typer.Option("--copies", help=described("copies"), rich_help_panel=BUDGET_PANEL)]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help=described("seed"), rich_help_panel=BUDGET_PANEL)]
SeedsOpt = Annotated[Optional[int], typer.Option("--seeds", help=described("seeds", "Repeat every run with this many seeds (seed, seed+1, ...)."), rich_help_panel=BUDGET_PANEL)]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help=described("device"), rich_help_panel=BUDGET_PANEL)]
MethodOpt = Annotated[Optional[str], typer.Option("--method", "-m", help=described("method", "The method(s) to rank by: alrao (the paper's), any name `alrao methods` lists, or several comma-separated (a portfolio: each architecture ranked by the best of them)."), rich_help_panel=BUDGET_PANEL)]
MethodsOpt = Annotated[Optional[str], typer.Option("--methods", help=shown_default("Everything compare runs, comma-separated: the first method run once is measured against the others, sgd-grid among them; NAME-grid runs at every --grid rate; one name alone runs beside sgd-grid and adam.", (*DEFAULTS.method, *COMPARE_BASELINES)), rich_help_panel=BUDGET_PANEL)]
BaselineOpt = Annotated[Optional[list[str]], typer.Option("--baseline", help="Add baseline columns (repeatable, or comma-separated): sgd-grid (SGD at every --grid rate), adam (Adam at 1e-3), or any method `alrao methods` lists.", rich_help_panel=BUDGET_PANEL)]
GridOpt = Annotated[Optional[str], typer.Option("--grid", help=described("grid", "SGD rates of compare and of --baseline sgd-grid: 1e-5,1e-3,0.1 or 1e-5:10:7 (7 log-spaced)."), rich_help_panel=BUDGET_PANEL)]


def head_option(panel: str) -> Any:
    """``--head``, shown in ``panel``: screen and compare list it with the method, check with its checks."""
    return Annotated[Optional[str], typer.Option("--head", help="The output layer's qualified name (e.g. classifier.6), for every ARCH, where alrao cannot find it.", rich_help_panel=panel)]


HeadOpt = head_option(BUDGET_PANEL)
ScheduleNetOpt = Annotated[Optional[str], typer.Option("--schedule-net", help=described("schedule_net"), rich_help_panel=BUDGET_PANEL)]
MetaArchOpt = Annotated[Optional[str], typer.Option("--meta-arch", help=described("meta_arch"), rich_help_panel=BUDGET_PANEL)]
MetaItersOpt = Annotated[Optional[int], typer.Option("--meta-iters", help=described("meta_iters"), rich_help_panel=BUDGET_PANEL)]
AdamOpt = Annotated[Optional[bool], typer.Option("--adam/--no-adam", help=described("adam", "Compare with Adam at its default rate.", flag_pair=True), rich_help_panel=BUDGET_PANEL, show_default=False)]
FailFastOpt = Annotated[Optional[bool], typer.Option("--fail-fast", help="Stop at the first failed run or diverged Alrao run (one diverged rate of a grid goes on); exit code 1.", rich_help_panel=STUDY_PANEL, show_default=False)]
CheckpointOpt = Annotated[Optional[int], typer.Option("--checkpoint-every", help=described("checkpoint_every"), rich_help_panel=STUDY_PANEL)]
OutOpt = Annotated[Optional[Path], typer.Option("--out", "-o", help=described("out"), rich_help_panel=OUTPUT_PANEL)]
PlotsOpt = Annotated[Optional[bool], typer.Option("--plots/--no-plots", help=described("plots", flag_pair=True), rich_help_panel=OUTPUT_PANEL, show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print only machine-readable JSON on stdout.", rich_help_panel=OUTPUT_PANEL)]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the final table.", rich_help_panel=OUTPUT_PANEL)]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.", rich_help_panel=OUTPUT_PANEL)]

# Where runs execute (config.schema.ExecutionConfig): never saved with the study, so a
# --resume may change them. Shared by screen, compare and check.
WorkersOpt = Annotated[Optional[int], typer.Option("--workers", help=described("workers"), rich_help_panel=PARALLEL_PANEL, show_default=False)]
ThreadsPerRunOpt = Annotated[Optional[int], typer.Option("--threads-per-run", help=described("threads_per_run"), rich_help_panel=PARALLEL_PANEL, show_default=False)]
RayAddressOpt = Annotated[Optional[str], typer.Option("--ray-address", envvar="RAY_ADDRESS", help=described("ray_address"), rich_help_panel=PARALLEL_PANEL, show_default=False)]
CpusPerRunOpt = Annotated[Optional[float], typer.Option("--cpus-per-run", help=described("cpus_per_run"), rich_help_panel=PARALLEL_PANEL, show_default=False)]
GpusPerRunOpt = Annotated[Optional[float], typer.Option("--gpus-per-run", help=described("gpus_per_run"), rich_help_panel=PARALLEL_PANEL, show_default=False)]
RetriesOpt = Annotated[Optional[int], typer.Option("--retries", help=described("retries"), rich_help_panel=PARALLEL_PANEL, show_default=False)]
# Shared by screen, compare and check too, but not a Ray option: runs in child processes of this one.
IsolateOpt = Annotated[Optional[bool], typer.Option("--isolate", help=described("isolate"), rich_help_panel=STUDY_PANEL, show_default=False)]
