"""The options shared by ``screen``, ``compare`` and ``check``, declared once.

Help texts that state a default read it from the config schema (:func:`help_for`), so a
default changed there shows here at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from alrao_cli.config.schema import help_for

STUDY_PANEL = "Study"
DATA_PANEL = "Data"
BUDGET_PANEL = "Budget and method"
OUTPUT_PANEL = "Output"
PARALLEL_PANEL = "Parallel runs (Ray)"

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
ForceOpt = Annotated[bool, typer.Option("--force", help="With --resume: train again, from scratch, the architectures whose model file changed since the run began (without it, such a resume is refused).", rich_help_panel=STUDY_PANEL)]
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
TimeGraceOpt = Annotated[Optional[float], typer.Option("--time-grace", help=help_for("time_grace"), rich_help_panel=BUDGET_PANEL, show_default=False)]
BatchOpt = Annotated[Optional[int], typer.Option("--batch-size", help=help_for("batch_size"), rich_help_panel=BUDGET_PANEL)]
LrMinOpt = Annotated[Optional[float], typer.Option("--lr-min", help=help_for("lr_min"), rich_help_panel=BUDGET_PANEL)]
LrMaxOpt = Annotated[Optional[float], typer.Option("--lr-max", help=help_for("lr_max"), rich_help_panel=BUDGET_PANEL)]
CopiesOpt = Annotated[Optional[int], typer.Option("--copies", help=help_for("copies"), rich_help_panel=BUDGET_PANEL)]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help=help_for("seed"), rich_help_panel=BUDGET_PANEL)]
SeedsOpt = Annotated[Optional[int], typer.Option("--seeds", help="Repeat every run with this many seeds.", rich_help_panel=BUDGET_PANEL)]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps.", rich_help_panel=BUDGET_PANEL)]
MethodOpt = Annotated[Optional[str], typer.Option("--method", "-m", help="The method(s) to rank by: alrao (the paper's, default), any name `alrao methods` lists, or several comma-separated (a portfolio: each architecture ranked by the best of them).", rich_help_panel=BUDGET_PANEL)]
MethodsOpt = Annotated[Optional[str], typer.Option("--methods", help="Everything compare runs, comma-separated: the first method run once is measured against the others, sgd-grid among them; NAME-grid runs at every --grid rate; one name alone runs beside sgd-grid and adam (default alrao,sgd-grid,adam).", rich_help_panel=BUDGET_PANEL)]
BaselineOpt = Annotated[Optional[list[str]], typer.Option("--baseline", help="Add baseline columns (repeatable, or comma-separated): sgd-grid (SGD at every --grid rate), adam (Adam at 1e-3), or any method `alrao methods` lists.", rich_help_panel=BUDGET_PANEL)]
GridOpt = Annotated[Optional[str], typer.Option("--grid", help="SGD rates of compare and of --baseline sgd-grid: 1e-5,1e-3,0.1 or 1e-5:10:7 (7 log-spaced). Default: the decades 1e-5..10.", rich_help_panel=BUDGET_PANEL)]
HeadOpt = Annotated[Optional[str], typer.Option("--head", help="The output layer's qualified name (e.g. classifier.6), for every ARCH, where alrao cannot find it.", rich_help_panel=BUDGET_PANEL)]
ScheduleNetOpt = Annotated[Optional[str], typer.Option("--schedule-net", help=help_for("schedule_net"), rich_help_panel=BUDGET_PANEL)]
MetaArchOpt = Annotated[Optional[str], typer.Option("--meta-arch", help=help_for("meta_arch"), rich_help_panel=BUDGET_PANEL)]
MetaItersOpt = Annotated[Optional[int], typer.Option("--meta-iters", help=help_for("meta_iters"), rich_help_panel=BUDGET_PANEL)]
AdamOpt = Annotated[Optional[bool], typer.Option("--adam/--no-adam", help="Compare with Adam at its default rate.", rich_help_panel=BUDGET_PANEL, show_default=False)]
FailFastOpt = Annotated[Optional[bool], typer.Option("--fail-fast", help="Stop at the first failed run or diverged Alrao run (one diverged rate of a grid goes on); exit code 1.", rich_help_panel=STUDY_PANEL, show_default=False)]
CheckpointOpt = Annotated[Optional[int], typer.Option("--checkpoint-every", help="Also checkpoint every N steps inside long epochs (by default: every 10 minutes, and at every epoch end).", rich_help_panel=STUDY_PANEL)]
OutOpt = Annotated[Optional[Path], typer.Option("--out", "-o", help="Run directory (default runs/<timestamp>-<command>).", rich_help_panel=OUTPUT_PANEL)]
PlotsOpt = Annotated[Optional[bool], typer.Option("--plots/--no-plots", help="Write PNG plots to the run directory.", rich_help_panel=OUTPUT_PANEL, show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print only machine-readable JSON on stdout.", rich_help_panel=OUTPUT_PANEL)]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the final table.", rich_help_panel=OUTPUT_PANEL)]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.", rich_help_panel=OUTPUT_PANEL)]

# Where runs execute (config.schema.ExecutionConfig): never saved with the study, so a
# --resume may change them. Shared by screen, compare and check.
WorkersOpt = Annotated[Optional[int], typer.Option("--workers", help=help_for("workers"), rich_help_panel=PARALLEL_PANEL, show_default=False)]
ThreadsPerRunOpt = Annotated[Optional[int], typer.Option("--threads-per-run", help=help_for("threads_per_run"), rich_help_panel=PARALLEL_PANEL, show_default=False)]
RayAddressOpt = Annotated[Optional[str], typer.Option("--ray-address", envvar="RAY_ADDRESS", help=help_for("ray_address"), rich_help_panel=PARALLEL_PANEL, show_default=False)]
CpusPerRunOpt = Annotated[Optional[float], typer.Option("--cpus-per-run", help=help_for("cpus_per_run"), rich_help_panel=PARALLEL_PANEL, show_default=False)]
GpusPerRunOpt = Annotated[Optional[float], typer.Option("--gpus-per-run", help=help_for("gpus_per_run"), rich_help_panel=PARALLEL_PANEL, show_default=False)]
RetriesOpt = Annotated[Optional[int], typer.Option("--retries", help=help_for("retries"), rich_help_panel=PARALLEL_PANEL, show_default=False)]
# Shared by screen, compare and check too, but not a Ray option: runs in child processes of this one.
IsolateOpt = Annotated[Optional[bool], typer.Option("--isolate", help=help_for("isolate"), rich_help_panel=STUDY_PANEL, show_default=False)]
