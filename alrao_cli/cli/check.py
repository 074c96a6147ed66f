"""``alrao check``: smoke-check model code for CI."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape

from alrao_cli.errors import AlraoUserError
from alrao_cli.cli.app import app, err, fail, results_console
from alrao_cli.cli.options import (
    ArchArg,
    ConfigOpt,
    DataOpt,
    DataDirOpt,
    DownloadOpt,
    SubsetOpt,
    ValFractionOpt,
    CHECK_PANEL,
    OUTPUT_PANEL,
    described,
    head_option,
    JsonOpt,
    DebugOpt,
    WorkersOpt,
    RayAddressOpt,
    IsolateOpt,
)

if typing.TYPE_CHECKING:
    from alrao_cli.config.schema import StudyConfig

CheckHeadOpt = head_option(CHECK_PANEL)  # --head beside --steps and --seed, the other choices of the checks


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
    head: CheckHeadOpt = None,
    steps: Annotated[int, typer.Option("--steps", min=2, help="Steps of the train item: the model as written, trained by Adam at 1e-3 on one batch.", rich_help_panel=CHECK_PANEL)] = 5,
    seed: Annotated[Optional[int], typer.Option("--seed", help=described("seed", "Seed of the checks."), rich_help_panel=CHECK_PANEL)] = None,
    junit_xml: Annotated[Optional[Path], typer.Option("--junit-xml", help="Also write a JUnit XML report here (for CI).", rich_help_panel=OUTPUT_PANEL)] = None,
    workers: WorkersOpt = None,
    ray_address: RayAddressOpt = None,
    isolate: IsolateOpt = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Smoke-check model code in seconds: builds, runs, wraps, trains, saves, is deterministic.

    Each architecture goes through six items, stopping at its first failure: build, forward (\\[batch, num_classes], finite), wrap (output layer found, per-feature rates), train (the model as written, a few Adam steps at 1e-3 on one batch: finite gradients reach every parameter, the loss goes down), serialize (state_dict round trip) and deterministic (same seed, same numbers). A screen's config (--config) gives the ARCHs, data, heads and model_kwargs.

    Exit code: 0 only if every architecture passed, 1 if some failed, 2 for a usage error. See docs/ci.md for a CI job.

    [bold]Examples[/]

      alrao check                    [dim]# the zoo, on MNIST-1D shapes[/]
      alrao check models/\\[!_]*.py --junit-xml reports/alrao.xml
      alrao check my_models.py:Net --head classifier.3
      alrao check --workers 2        [dim]# two architectures at once, on Ray[/]
    """
    import time
    from dataclasses import replace

    from alrao_cli.config.schema import build_execution
    from alrao_cli.study.executor import load_data_with, open_executor
    from alrao_cli.report.check import check_json, check_junit_path, check_table, message_lines, write_junit
    from alrao_cli.study.plan import data_spec_of, skipped_note, zoo_fitting
    try:
        start = time.perf_counter()
        flags = {
            "data": data, "data_dir": data_dir, "download": download,
            "subset": subset, "val_fraction": val_fraction, "seed": seed,
        }
        study = _check_config(archs, config, head, flags)
        execution = build_execution({"workers": workers, "ray_address": ray_address, "isolate": isolate})
        if junit_xml is not None:
            check_junit_path(junit_xml)  # now, not after every check has run
        # No augmentation: a random crop would change the one fixed batch between runs.
        data_spec = replace(data_spec_of(study), augment=False)
        loaded = load_data_with(execution, data_spec)
        names, skipped = (list(study.archs), ()) if study.archs else zoo_fitting(loaded.info.input_shape)
        note = skipped_note(skipped, loaded.info.input_shape)
        if note:  # on stderr: --json output stays clean
            err.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
        # --json: standard output is for the JSON alone, whatever a model file prints goes to stderr.
        with results_console(json_out) as out:
            with open_executor(execution) as executor:  # in this process, in child processes, or on Ray
                results = executor.check(
                    names, data_spec, steps=steps, seed=study.seed, model_kwargs=study.model_kwargs, heads=study.heads
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
        fail(error, debug)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]: the check stopped before it finished; no report was written")
        raise typer.Exit(130) from None
    raise typer.Exit(0 if all(result.passed for result in results) else 1)


