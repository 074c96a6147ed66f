"""A study: the runs of one ``alrao screen`` or ``alrao compare``, saved as they end.

The study owns the run directory: it writes the resolved config first, then
``results.json`` (atomically) after every run, so that a crash or a ``kill -9`` loses at
most the run in flight, and that one only back to its last checkpoint. A run's
checkpoint is deleted only once its result is saved. ``--resume`` reads the directory
back, skips finished runs and continues the one in flight.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Protocol

from alrao_cli.config.schema import ExecutionConfig, StudyConfig, config_to_dict
from alrao_cli.config.paths import anchored
from alrao_cli.study.methods import described, get_method
from alrao_cli.results.ranking import screened_methods
from alrao_cli.results.records import run_key
from alrao_cli.errors import AlraoUserError
from alrao_cli.study.executor import (
    Executor, Preflight, SequentialExecutor, load_data_with, open_executor, preflight_with, require_executor,
)
from alrao_cli.study.guard import usage_error_if_escaped
from alrao_cli.study.rundir import (
    changed_sources,
    default_run_dir,
    load_resumable,
    locked,
    prepare_run_dir,
    record_sources,
    refuse_existing_run,
    refuse_not_a_run,
    remove_if_unused,
    source_files,
    write_config,
)
from alrao_cli.study.signals import stop_signals_as_interrupt
from alrao_cli.study.plan import Plan, StudyKind, data_spec_of, plan_study
from alrao_cli.results.records import RunResult, StudyResult, save_study
from alrao_cli.study.attempt import PreflightFailure, failed_result
from alrao_cli.study.spec import EventCallback, MethodSpec, Progress, RunEvent, RunSpec, RunStarted
from alrao_cli.study.checkpoint import checkpoint_path, discard_checkpoint



logger = logging.getLogger(__name__)


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


def is_problem(run: RunResult, screened: tuple[str, ...]) -> bool:
    """A run that makes the exit code 1 and stops ``--fail-fast``: it failed or timed out, or
    a screened method (``--method``, Alrao by default) run once diverged.

    One rate of a grid that diverges (SGD at rate 10, say) is an expected outcome of the
    grid, not a problem with the study, whether the grid is a baseline or screened
    (``--method sgd``); a screened grid none of whose rates is healthy is
    (:func:`grids_without_a_healthy_rate`).
    """
    if run.status in ("failed", "timed out"):
        return True
    return run.status == "diverged" and run.method in screened and not run.tuned_over_grid


def grids_without_a_healthy_rate(runs: Sequence[RunResult], screened: tuple[str, ...]) -> list[tuple[str, str]]:
    """(architecture, method) of each screened method tuned over the grid that diverged at every rate."""
    healthy: dict[tuple[str, str], bool] = {}
    for run in runs:
        if run.method in screened and run.tuned_over_grid:
            key = (run.arch, run.method)
            healthy[key] = healthy.get(key, False) or run.status == "ok"
    return [key for key, any_healthy in healthy.items() if not any_healthy]


@dataclass(frozen=True, slots=True)
class StudyOutcome:
    run_dir: Path
    study: StudyResult
    interrupted: bool = False  # Ctrl-C or SIGTERM
    stopped_early: bool = False  # --fail-fast stopped at a problem
    terminated: bool = False  # the interruption was SIGTERM or SIGHUP

    @property
    def exit_code(self) -> int:
        """0: every architecture finished; 1: a problem (:func:`is_problem`), or --fail-fast
        stopped; 130: Ctrl-C; 143: SIGTERM (128 + the signal's number, as shells report)."""
        if self.interrupted:
            return 143 if self.terminated else 130
        screened = screened_methods(self.study.config)
        runs = self.study.runs
        if self.stopped_early or any(is_problem(run, screened) for run in runs) or grids_without_a_healthy_rate(runs, screened):
            return 1
        return 0


def run_study(
    config: StudyConfig,
    kind: StudyKind,
    *,
    resume: Path | None = None,
    force: bool = False,
    observer: StudyObserver | None = None,
    executor: Executor | None = None,
    execution: ExecutionConfig | None = None,
) -> StudyOutcome:
    """Plan, run and save a study; returns even when interrupted (``outcome.interrupted``).

    Ctrl-C, SIGTERM and SIGHUP stop it the same way: the finished runs are saved, the runs
    in flight (on workers too) stop and keep their last checkpoint. The run directory is
    held by this process until the study ends (:func:`~alrao_cli.study.rundir.locked`). On
    resume, ``force`` restarts from scratch the architectures whose model file changed
    since the study began, instead of refusing to go on.

    Without ``executor``, ``execution`` picks one (:func:`~alrao_cli.study.executor.open_executor`):
    it is not part of the study, so a resume may run on other workers than the start did.
    What it cannot do is refused before training, and Ray starts only once the plan and
    the preflight have passed, and only if some run is left.
    """
    execution = execution or ExecutionConfig()
    observer = observer or SilentObserver()
    previous = None
    if resume is not None:
        refuse_not_a_run(resume, kind)  # before prepare_run_dir, which would create a missing one
        run_dir = resume
    else:
        config = anchored(config)  # so that --resume works from any folder
        run_dir = Path(config.out).expanduser() if config.out else default_run_dir(kind)
        refuse_existing_run(run_dir)
    run_dir = run_dir.absolute()  # model code may change the working directory while runs write here
    created = not run_dir.exists()
    prepare_run_dir(run_dir)  # before anything that may write into it (a failed model's traceback)
    with locked(run_dir), ExitStack() as resources:
        try:
            changed: list[str] = []
            if resume is not None:
                config, previous = load_resumable(resume, kind)
                changed = _refuse_changed_sources(run_dir, force)
            if executor is None:
                require_executor(execution, config.device)
            plan = _plan(config, kind, resume)
            if changed and previous is not None:
                previous = _restart(previous, plan, run_dir, changed)
            load_data_with(execution, data_spec_of(config))
            study = previous or StudyResult(kind=kind, config=config_to_dict(config), runs=(), started=_now())
            study = _record_unresolved(study, plan, config.method[0], resuming=previous is not None)
            done = {run.key for run in study.runs}
            pending = [spec for spec in plan.runs if spec.key not in done]
            study, pending = _preflight(study, pending, run_dir, previous is not None, preflight_with(execution))
            if executor is None and pending:
                executor = resources.enter_context(open_executor(execution, config.device))
        except (AlraoUserError, KeyboardInterrupt):
            if created:
                remove_if_unused(run_dir)  # a usage error, or Ctrl-C while starting, leaves no empty run directory
            raise
        if resume is None:
            write_config(run_dir, config)
            record_sources(run_dir, source_files(spec.arch for spec in plan.runs))
        return _run_pending(config, plan, study, pending, run_dir, previous is not None, observer, executor)


def _run_pending(
    config: StudyConfig, plan: Plan, study: StudyResult, pending: list[RunSpec], run_dir: Path,
    resumed: bool, observer: StudyObserver, executor: Executor | None,
) -> StudyOutcome:
    """Hand the pending runs to the executor and save each result as it arrives."""
    study = replace(study, interrupted=False, finished=None)
    save_study(run_dir, study)
    stopped_early = config.fail_fast and any(is_problem(run, config.method) for run in study.runs)
    if stopped_early:
        pending = []  # --fail-fast: an architecture already failed its preflight
    observer.study_started(plan, done=len(plan.runs) - len(pending), resumed=resumed)
    specs = {spec.key: spec for spec in plan.runs}
    position = {spec.key: index for index, spec in enumerate(plan.runs, start=1)}

    def forward(event: RunEvent) -> None:
        for listener in _LISTENERS:
            listener(event)
        if isinstance(event, RunStarted):
            observer.run_started(specs[event.key], position[event.key], len(plan.runs))
        else:
            observer.run_progress(event)

    executor = executor or SequentialExecutor()
    stop: KeyboardInterrupt | None = None
    with stop_signals_as_interrupt() as first_stop:  # also over the final save: a second signal must not lose it
        results = _in_stages(executor, pending, run_dir, forward)
        try:
            for result in results:
                changed = changed_sources(run_dir)
                if changed and _reads_from(specs[result.key], changed):
                    raise _changed_while_running(run_dir, changed)  # which version it trained is unknown: not saved
                study = study.with_run(result)
                save_study(run_dir, study)
                discard_checkpoint(checkpoint_path(run_dir, result.key))  # only now that the result is safe
                observer.run_finished(result)
                if changed:
                    raise _changed_while_running(run_dir, changed)
                if config.fail_fast and is_problem(result, config.method):
                    stopped_early = True
                    break
        except KeyboardInterrupt as interruption:
            stop = interruption
        finally:
            stop = _close(results) or stop
        study = replace(study, interrupted=stop is not None, finished=None if stop is not None else _now())
        save_study(run_dir, study)
        _tidy_checkpoints(run_dir, study)
    return StudyOutcome(run_dir, study, stop is not None, stopped_early, stop is not None and first_stop.polite)


def _in_stages(executor: Executor, pending: list[RunSpec], run_dir: Path, on_event: EventCallback) -> Iterator[RunResult]:
    """The executor's results, stage after stage (:meth:`TrainingMethod.stage`): every run of
    a stage has finished before the next stage's runs are handed over, on any executor.

    One stage, the usual case, is one ``executor.run``; closing this iterator closes it.
    """
    stages: dict[int, list[RunSpec]] = {}
    for spec in pending:
        stages.setdefault(get_method(spec.method.name).stage(spec), []).append(spec)
    for stage in sorted(stages):
        yield from executor.run(stages[stage], run_dir, on_event)


def _close(results: object) -> KeyboardInterrupt | None:
    """Stop the executor's runs still in flight now, rather than whenever the iterator is
    collected: no worker may write into the run directory after its final save.

    A first stop signal that arrives just then is returned, so that the study still ends
    as interrupted (the runs it did not get to stop end with this process, or its Ray).
    """
    close = getattr(results, "close", None)
    try:
        if close is not None:
            close()
    except KeyboardInterrupt as interruption:
        return interruption
    return None


_LISTENERS: list[EventCallback] = []


@contextmanager
def listening(listener: EventCallback) -> Iterator[None]:
    """Also hand every run event of the studies run inside the block to ``listener``.

    The hook through which tests stop a study at a chosen checkpoint (a ``Progress`` with
    ``checkpointed``), the way Ctrl-C or SIGTERM would, whichever command line runs it.
    Events reach it in the study's process (with workers, as forwarded from them).
    """
    _LISTENERS.append(listener)
    try:
        yield
    finally:
        _LISTENERS.remove(listener)


def _refuse_changed_sources(run_dir: Path, force: bool) -> list[str]:
    """The model files changed since the study began: refused, or with ``force`` returned
    so that their architectures start again."""
    changed = changed_sources(run_dir)
    if changed and not force:
        more = f" (and {len(changed) - 1} more model file(s))" if len(changed) > 1 else ""
        raise AlraoUserError(
            f"--resume {run_dir}: {changed[0]} changed since the run began{more}",
            hint="put it back as it was, or add --force to train its architectures again from scratch",
        )
    return changed


def _reads_from(spec: RunSpec, files: list[str]) -> bool:
    return any(file in files for file in source_files([spec.arch]))


def _changed_while_running(run_dir: Path, changed: list[str]) -> AlraoUserError:
    """A model file edited after the study imported it: the runs of its architectures would
    mix two versions of it (a run in a process of its own imports the file anew), so the
    study stops; the result of a run of that file just received is not saved."""
    more = f" (and {len(changed) - 1} more model file(s))" if len(changed) > 1 else ""
    return AlraoUserError(
        f"{changed[0]} changed after the study imported it{more}: stopped, so that its runs do not mix "
        "two versions of it",
        hint=f"continue with --resume {run_dir} --force to train its architectures again from scratch, "
        "or put it back as it was and --resume",
    )


def _restart(study: StudyResult, plan: Plan, run_dir: Path, changed: list[str]) -> StudyResult:
    """Forget every run (result and checkpoint) of an architecture read from a changed file."""
    stale = {spec.key for spec in plan.runs if any(file in source_files([spec.arch]) for file in changed)}
    for key in stale:
        discard_checkpoint(checkpoint_path(run_dir, key))
    logger.warning("--force: %s changed since the run began: %d run(s) start again", ", ".join(changed), len(stale))
    record_sources(run_dir, source_files(spec.arch for spec in plan.runs))
    return replace(study, runs=tuple(run for run in study.runs if run.key not in stale))


def _plan(config: StudyConfig, kind: StudyKind, resume: Path | None) -> Plan:
    """The study's plan; on resume, a config that no longer plans says it is the resume that failed.

    Planning imports the model files: what their top-level code changes in the process
    is put back (a ``torch.set_default_dtype`` must not reach the other files' runs).
    """
    try:
        with usage_error_if_escaped("the model code", "importing the model files", "fix the model file"):
            return plan_study(config, kind)
    except AlraoUserError as error:
        if resume is None:
            raise
        raise AlraoUserError(f"--resume {resume}: {error.message}", hint=error.hint) from error


def _tidy_checkpoints(run_dir: Path, study: StudyResult) -> None:
    """Delete the checkpoints of saved runs (a crash may have left one); then the empty folder."""
    for run in study.runs:
        discard_checkpoint(checkpoint_path(run_dir, run.key))
    checkpoints = run_dir / "checkpoints"
    if checkpoints.is_dir() and not any(checkpoints.iterdir()):
        checkpoints.rmdir()


def _record_unresolved(study: StudyResult, plan: Plan, method: str, resuming: bool) -> StudyResult:
    """Architectures that could not be imported are failed runs; on resume, only if they were already."""
    for unresolved in plan.unresolved:
        result = _unresolved_result(unresolved, method, plan.seeds[0])
        if resuming and result.key not in {run.key for run in study.runs}:
            raise _no_longer_works(unresolved.label, result.reason)
        if not resuming:
            _say_failed_before_training(unresolved.label, result.reason)
        study = study.with_run(result)
    return study


def _say_failed_before_training(label: str, reason: str | None) -> None:
    """A broken architecture, said as soon as it is found: not only in the final table, after
    every other architecture has trained."""
    said = reason if reason and reason.startswith(f"{label}:") else f"{label}: {reason}"
    logger.warning("failed before training: %s; the other architectures go on", said)


def _preflight(
    study: StudyResult, pending: list[RunSpec], run_dir: Path, resuming: bool, preflight: Preflight
) -> tuple[StudyResult, list[RunSpec]]:
    """Build and probe each pending architecture once; record the broken ones as failed
    (or timed out: a model that hangs does so here first).

    The Alrao build covers the bare model too; only where it fails is the architecture
    built for a baseline as well, so that a model Alrao cannot wrap (no output layer)
    still gets its SGD and Adam runs, and those rows say what is wrong with *them*.

    If not one architecture of a fresh study works, the input is wrong: a usage error. On
    resume, every pending architecture worked when the study began, so one that no longer
    builds (a moved or edited model file) is a usage error too, rather than a failure
    recorded for ever.
    """
    failures: dict[tuple[str, bool], PreflightFailure] = {}
    checked: set[tuple[str, bool]] = set()
    for spec in pending:
        group = _group(spec)
        alrao_group = (spec.arch, True)
        if group in checked or (group != alrao_group and alrao_group in checked and alrao_group not in failures):
            continue
        checked.add(group)
        failure = preflight(spec, run_dir)
        if failure is not None:
            failures[group] = failure
    broken = [spec for spec in pending if _group(spec) in failures]
    if resuming and broken:
        failure = failures[_group(broken[0])]
        raise _no_longer_works(broken[0].label, failure.reason) from failure.error
    if not resuming and pending and len(broken) == len(pending):
        failure = failures[_group(broken[0])]
        if isinstance(failure.error, AlraoUserError):
            raise failure.error  # the original, so that --debug shows where it came from
        raise AlraoUserError(failure.reason) from failure.error
    for label, reason in dict.fromkeys((spec.label, failures[_group(spec)].reason) for spec in broken):
        _say_failed_before_training(label, reason)
    for spec in broken:
        failure = failures[_group(spec)]
        study = study.with_run(failed_result(spec, failure.reason, status=failure.status))
    return study, [spec for spec in pending if _group(spec) not in failures]


def _group(spec: RunSpec) -> tuple[str, bool]:
    """Runs that build the same thing: Alrao wraps the model, every baseline trains it bare."""
    return spec.arch, spec.method.name == "alrao"


def _no_longer_works(label: str, reason: str | None) -> AlraoUserError:
    return AlraoUserError(
        f"--resume: {label} no longer builds: {reason}",
        hint="put its model file (or data) back as it was when the study started, then resume again",
    )


def _unresolved_result(unresolved, method: str, seed: int) -> RunResult:
    reason = unresolved.reason + (f" ({unresolved.hint})" if unresolved.hint else "")
    return RunResult(
        key=run_key(unresolved.label, method, None, seed), arch=unresolved.label, method=method, lr=None,
        seed=seed, status="failed", reason=reason, params=None, seconds=0.0, **described(MethodSpec(method)),
    )


def _now() -> str:
    return datetime.now().isoformat(timespec="seconds")
