"""A study: the runs of one ``alrao screen`` or ``alrao compare``, saved as they end.

The study owns the run directory: it writes the resolved config first, then
``results.json`` (atomically) after every run, so that a crash or a ``kill -9`` loses at
most the run in flight, and that one only back to its last checkpoint. ``--resume``
reads the directory back, skips finished runs and continues the one in flight.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Protocol

from alrao_cli.config import StudyConfig, build_config, config_to_dict, dump_config_yaml, load_config_file
from alrao_cli.errors import AlraoUserError
from alrao_cli.executor import Executor, SequentialExecutor
from alrao_cli.plan import Plan, StudyKind, data_spec_of, plan_study
from alrao_cli.results import RunResult, StudyResult, load_study, save_study
from alrao_cli.runner import cached_data, execute_run, failed_result, preflight
from alrao_cli.train import Progress, RunSpec

CONFIG_FILE = "config.yaml"


class StudyObserver(Protocol):
    """What a display wants to hear about; every method is optional in practice."""

    def study_started(self, plan: Plan, done: int, resumed: bool) -> None: ...
    def run_started(self, spec: RunSpec, index: int, total: int) -> None: ...
    def run_progress(self, progress: Progress) -> None: ...
    def run_finished(self, result: RunResult) -> None: ...


class SilentObserver:
    def study_started(self, plan: Plan, done: int, resumed: bool) -> None:
        pass

    def run_started(self, spec: RunSpec, index: int, total: int) -> None:
        pass

    def run_progress(self, progress: Progress) -> None:
        pass

    def run_finished(self, result: RunResult) -> None:
        pass


@dataclass(frozen=True, slots=True)
class StudyOutcome:
    run_dir: Path
    study: StudyResult
    interrupted: bool = False
    stopped_early: bool = False  # --fail-fast stopped at a failure

    @property
    def exit_code(self) -> int:
        """0: every architecture finished; 1: a run failed or an Alrao run diverged; 130: Ctrl-C.

        A single-rate baseline that diverges (SGD at rate 10, say) is an expected outcome
        of a grid, not a problem with the study.
        """
        if self.interrupted:
            return 130
        problems = [
            run for run in self.study.runs
            if run.status == "failed" or (run.status == "diverged" and run.method == "alrao")
        ]
        return 1 if problems else 0


def default_run_dir(kind: StudyKind) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    candidate = Path("runs") / f"{stamp}-{kind}"
    suffix = 1
    while candidate.exists():
        suffix += 1
        candidate = Path("runs") / f"{stamp}-{kind}-{suffix}"
    return candidate


def prepare_run_dir(path: Path) -> Path:
    """Create the run directory, or say clearly why it cannot be written."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise AlraoUserError(
            f"cannot write the output directory {path}: {error.strerror or error}",
            hint="choose another folder with --out",
        ) from None
    return path


def load_resumable(run_dir: Path, kind: StudyKind) -> tuple[StudyConfig, StudyResult]:
    """The saved config and results of an earlier run directory, checked to be one."""
    config_file = run_dir / CONFIG_FILE
    if not run_dir.is_dir() or not config_file.is_file():
        raise AlraoUserError(
            f"--resume {run_dir}: not a run directory (no {CONFIG_FILE} in it)",
            hint="pass the folder an earlier `alrao screen` or `alrao compare` printed",
        )
    config = build_config(load_config_file(config_file), {})
    study = load_study(run_dir) if (run_dir / "results.json").exists() else None
    if study is not None and study.kind != kind:
        raise AlraoUserError(
            f"--resume {run_dir}: that run is an `alrao {study.kind}`, not an `alrao {kind}`",
            hint=f"resume it with `alrao {study.kind} --resume {run_dir}`",
        )
    return config, study


def run_study(
    config: StudyConfig,
    kind: StudyKind,
    *,
    resume: Path | None = None,
    observer: StudyObserver | None = None,
    executor: Executor | None = None,
) -> StudyOutcome:
    """Plan, run and save a study; returns even when interrupted (``outcome.interrupted``)."""
    observer = observer or SilentObserver()
    previous = None
    if resume is not None:
        config, previous = load_resumable(resume, kind)
        run_dir = resume
    else:
        run_dir = Path(config.out) if config.out else default_run_dir(kind)
    plan = plan_study(config, kind)
    cached_data(data_spec_of(config))  # a missing dataset is a usage error: say it before training
    study = previous or StudyResult(kind=kind, config=config_to_dict(config), runs=(), started=_now())
    for unresolved in plan.unresolved:
        study = study.with_run(_unresolved_result(unresolved, plan.seeds[0]))
    done = {run.key for run in study.runs}
    pending = [spec for spec in plan.runs if spec.key not in done]
    study, pending = _preflight(study, pending, run_dir, fresh=previous is None)

    prepare_run_dir(run_dir)
    if resume is None:
        # Saved without its folder: re-running this file starts a new run, never overwrites this one.
        (run_dir / CONFIG_FILE).write_text(dump_config_yaml(replace(config, out=None)))
    study = replace(study, interrupted=False, finished=None)
    save_study(run_dir, study)
    stopped_early = config.fail_fast and any(run.status != "ok" for run in study.runs)
    if stopped_early:
        pending = []  # --fail-fast: an architecture already failed its preflight
    observer.study_started(plan, done=len(plan.runs) - len(pending), resumed=previous is not None)
    position = {spec.key: index for index, spec in enumerate(plan.runs, start=1)}

    def run_one(spec: RunSpec) -> RunResult:
        observer.run_started(spec, position[spec.key], len(plan.runs))
        return execute_run(spec, run_dir, observer.run_progress)

    executor = executor or SequentialExecutor()
    interrupted = False
    try:
        for result in executor.run(pending, run_one):
            study = study.with_run(result)
            save_study(run_dir, study)
            observer.run_finished(result)
            if config.fail_fast and result.status != "ok":
                stopped_early = True
                break
    except KeyboardInterrupt:
        interrupted = True
    study = replace(study, interrupted=interrupted, finished=None if interrupted else _now())
    save_study(run_dir, study)
    checkpoints = run_dir / "checkpoints"
    if checkpoints.is_dir() and not any(checkpoints.iterdir()):
        checkpoints.rmdir()  # every run finished: nothing left to resume from
    return StudyOutcome(run_dir, study, interrupted, stopped_early)


def _preflight(
    study: StudyResult, pending: list[RunSpec], run_dir: Path, fresh: bool
) -> tuple[StudyResult, list[RunSpec]]:
    """Build and probe each pending architecture once; record the broken ones as failed.

    If not one architecture of a fresh study works, the input is wrong: a usage error.
    """
    broken: dict[str, str] = {}
    for spec in pending:
        if spec.arch not in broken and spec.method.name == "alrao":
            reason = preflight(spec, run_dir)
            if reason is not None:
                broken[spec.arch] = reason
    if fresh and all(spec.arch in broken for spec in pending):
        first_problem = next(iter(broken.values()), None) or study.runs[0].reason
        raise AlraoUserError(first_problem)
    if not broken:
        return study, pending
    for spec in pending:
        if spec.arch in broken:
            study = study.with_run(failed_result(spec, broken[spec.arch]))
    return study, [spec for spec in pending if spec.arch not in broken]


def _unresolved_result(unresolved, seed: int) -> RunResult:
    reason = unresolved.reason + (f" ({unresolved.hint})" if unresolved.hint else "")
    return RunResult(
        key=f"{unresolved.label}|alrao|seed={seed}", arch=unresolved.label, method="alrao", lr=None,
        seed=seed, status="failed", reason=reason, params=None, seconds=0.0,
    )


def _now() -> str:
    return datetime.now().isoformat(timespec="seconds")
