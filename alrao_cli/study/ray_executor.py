"""Runs as Ray tasks: side by side on this machine, on its GPUs, or across a cluster.

Each run is one task, :func:`_run_on_worker`, shipped with its plain
:class:`~alrao_cli.study.spec.RunSpec` and the run directory; the worker imports the
model file and the data factory itself, by the path the spec holds, trains the run with
:func:`~alrao_cli.study.attempt.execute_run` (which resumes from the run's checkpoint and
turns any error of the model into a failed result) and returns the result to the
driver, which saves it. Datasets are loaded once per worker process
(:func:`~alrao_cli.data.load.cached_data`), and generated ones are cached on disk once
per node.

Faults: a worker process that dies (killed, out of memory, its node lost) is a system
failure to Ray, which runs the task again, up to ``retries`` times; the new attempt
continues from the run's last checkpoint. An exception in the model never reaches Ray
(the run's result says ``failed``), so it is never retried. A run that used up its
retries is recorded as failed, with why, and the study goes on.

Time limits: a run with ``--time-budget`` is given its limit
(:func:`~alrao_cli.study.time_limit.time_limit`) on the worker, where the watchdog stops
a model stuck in Python and the run comes back "timed out" as it would in-process. A
worker stuck where the watchdog cannot reach (native code, SIGALRM blocked) is cancelled
by the driver :data:`KILL_MARGIN_SECONDS` after that limit, counted from when the driver
heard the run start, and recorded "timed out" the same way.

Progress: the tasks send their events to a small actor (:class:`_EventBox`); the driver
takes them between waits and hands them to the study's observer, in its own process. A
task sends its last events before it returns, so a run's progress always comes before
its result.

Ray is imported here only, inside functions: without ``--workers``, ``--ray-address``
or resources per run, nothing of Ray is loaded.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from alrao_cli.config.schema import ExecutionConfig
from alrao_cli.errors import AlraoUserError
from alrao_cli.study.spec import EventCallback, Progress, RunEvent, RunSpec, RunStarted
from alrao_cli.study.time_limit import time_limit, timed_out_reason
from alrao_cli.util.reasons import first_line, one_line_reason

if TYPE_CHECKING:
    from alrao_cli.data.spec import DataSpec
    from alrao_cli.results.records import RunResult
    from alrao_cli.study.check import ArchCheck

logger = logging.getLogger(__name__)

RAY_INSTALL = 'pip install "alrao-cli[ray]"'
POLL_SECONDS = 0.2  # the driver looks for finished runs and new progress this often
PROGRESS_SECONDS = 0.25  # a task sends at most this many progress events a second (epoch ends always)
CANCEL_SECONDS = 10.0  # how long a stopped study waits for its cancelled tasks to end
CONNECT_SECONDS = 5.0  # how long --ray-address HOST:PORT may take to answer
KILL_MARGIN_SECONDS = 10.0  # past its time limit, the driver cancels a run its worker's watchdog did not stop

_T = TypeVar("_T")


# -- before anything starts --------------------------------------------------------------------
def import_ray(execution: ExecutionConfig) -> Any:
    """The ``ray`` module; its absence is one line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise AlraoUserError(f"{execution.asked_for_ray} runs on Ray, which is not installed", hint=RAY_INSTALL) from None
    return ray


def require_ray(execution: ExecutionConfig, device: str) -> None:
    """Refuse what cannot run, before Ray starts: no Ray, GPUs asked of a device or a
    machine that has none."""
    ray = import_ray(execution)
    gpus = execution.gpus_per_run
    if gpus <= 0:
        return
    if device in ("cpu", "mps"):
        raise AlraoUserError(
            f"--gpus-per-run {gpus:g} reserves GPUs, but --device {device} trains on the {device.upper()}",
            hint="drop --gpus-per-run, or use --device cuda (or auto)",
        )
    if device.startswith("cuda:"):
        raise AlraoUserError(
            f"--gpus-per-run {gpus:g}: Ray gives each run its own GPU, so --device {device} cannot pick one",
            hint="use --device cuda (or auto)",
        )
    if execution.ray_address is None and not ray.is_initialized():
        import torch

        _refuse_gpus(gpus, torch.cuda.device_count(), "this machine")


def _refuse_gpus(asked: float, largest: float, where: str) -> None:
    """A GPU request no node can meet would wait for ever: refused now instead."""
    if largest == 0:
        raise AlraoUserError(
            f"--gpus-per-run {asked:g}: {where} has no GPU",
            hint="drop --gpus-per-run to train on the CPU, or join a cluster with GPUs (--ray-address)",
        )
    if asked > largest:
        raise AlraoUserError(
            f"--gpus-per-run {asked:g}: no node of {where} has more than {largest:g} GPU(s)",
            hint=f"ask for at most {largest:g}; a fraction (0.5, 0.25) packs several runs on one GPU",
        )


# -- what each run is given ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RunResources:
    """What every run gets: torch threads, and what Ray reserves for it."""

    threads: int
    cpus: float
    gpus: float
    in_flight: int | None  # runs submitted at once; None: all, Ray's resources decide

    @classmethod
    def of(cls, execution: ExecutionConfig, node_cpus: float) -> RunResources:
        """``--threads-per-run`` or ``--cpus-per-run`` if given, else ``node_cpus // workers``.

        ``node_cpus`` is the largest node's (this machine's, for a local Ray). Without
        ``--workers`` on a cluster, a run takes one thread and as many run at once as fit.
        """
        threads = execution.threads_per_run
        if threads is None and execution.cpus_per_run is not None:
            threads = max(1, math.floor(execution.cpus_per_run))
        if threads is None:
            threads = max(1, int(node_cpus) // execution.workers) if execution.workers else 1
        cpus = execution.cpus_per_run if execution.cpus_per_run is not None else float(threads)
        return cls(threads, cpus, execution.gpus_per_run, execution.workers)


def usable_cores() -> int:
    """The cores this process may run on (a container's or a scheduler's share, not the machine's)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@contextlib.contextmanager
def ray_executor(execution: ExecutionConfig, device: str = "auto") -> Iterator[RayExecutor]:
    """Join the cluster (``--ray-address``), or start a local Ray for the block; then a
    :class:`RayExecutor`, its request checked against the nodes' resources.

    A Ray this process had already started (a notebook, the tests) is used as it is and
    left running; one started here is shut down at the end, and a cluster joined here is
    left (the cluster keeps running).
    """
    require_ray(execution, device)
    ray = import_ray(execution)
    started = not ray.is_initialized()
    if started:
        _start(ray, execution)
    try:
        nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
        largest_cpus = max((node.get("CPU", 0.0) for node in nodes), default=0.0)
        largest_gpus = max((node.get("GPU", 0.0) for node in nodes), default=0.0)
        resources = RunResources.of(execution, largest_cpus)
        where = f"the Ray cluster at {execution.ray_address}" if execution.ray_address else "this machine's Ray"
        if resources.gpus > 0:
            _refuse_gpus(resources.gpus, largest_gpus, where)
        if resources.cpus > largest_cpus:
            raise AlraoUserError(
                f"--cpus-per-run {resources.cpus:g}: no node of {where} has more than {largest_cpus:g} CPUs",
                hint=f"ask for at most {largest_cpus:g} (--cpus-per-run, --threads-per-run)",
            )
        yield RayExecutor(ray, resources, execution.retries, execution.time_grace)
    finally:
        if started:
            ray.shutdown()


def _start(ray: Any, execution: ExecutionConfig) -> None:
    """``ray.init``: joining ``--ray-address``, or a local instance (no dashboard) with room
    for ``--workers`` runs at once."""
    quiet = logging.getLogger("alrao_cli").getEffectiveLevel() > logging.DEBUG
    options: dict[str, Any] = {"logging_level": logging.WARNING if quiet else logging.INFO}
    if execution.ray_address is None:
        cores = usable_cores()
        per_run = RunResources.of(execution, cores)
        options.update(num_cpus=max(cores, math.ceil((execution.workers or 1) * per_run.cpus)), include_dashboard=False)
        with _without_token_notice():
            ray.init(**options)
        return
    _refuse_unreachable(execution.ray_address)
    try:
        ray.init(address=execution.ray_address, **options)
    except (ConnectionError, TimeoutError, ValueError) as error:
        raise _cannot_join(execution.ray_address, first_line(error)) from error


TOKEN_NOTICE_LOGGER = "ray._private.authentication.authentication_token_setup"
TOKEN_NOTICE = "Token authentication is enabled for this Ray cluster"


@contextlib.contextmanager
def _without_token_notice() -> Iterator[None]:
    """Ray's warning that a new local instance has token authentication on (as it should):
    noise in a screen's output for a Ray that lives only as long as the command. Only that
    notice is dropped; the one saying authentication is *off* still shows."""

    def keep(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(TOKEN_NOTICE)

    notices = logging.getLogger(TOKEN_NOTICE_LOGGER)
    notices.addFilter(keep)
    try:
        yield
    finally:
        notices.removeFilter(keep)


def _refuse_unreachable(address: str) -> None:
    """A ``HOST:PORT`` nothing answers at: said in seconds (``ray.init`` would retry for minutes)."""
    match = re.fullmatch(r"\[?([\w.:-]+?)\]?:(\d+)", address.strip())
    if match is None:  # auto, ray://..., anything Ray reads itself
        return
    try:
        socket.create_connection((match[1], int(match[2])), timeout=CONNECT_SECONDS).close()
    except OSError as error:
        raise _cannot_join(address, error.strerror or type(error).__name__) from None


def _cannot_join(address: str, why: str) -> AlraoUserError:
    return AlraoUserError(
        f"--ray-address {address}: cannot join a Ray cluster there ({why})",
        hint="start one with `ray start --head` and give the address it prints (or auto, on its head node)",
    )


# -- the executor --------------------------------------------------------------------------------------
class RayExecutor:
    """Runs specs (and ``alrao check``'s architectures) as Ray tasks; see the module's docstring."""

    def __init__(self, ray: Any, resources: RunResources, retries: int, grace: float | None = None) -> None:
        self.ray = ray
        self.resources = resources
        self.retries = retries
        self.grace = grace  # --time-grace (None: the default)

    def run(self, specs: Sequence[RunSpec], run_dir: Path, on_event: EventCallback) -> Iterator[RunResult]:
        """Every spec as a task, at most ``in_flight`` at once; each result as it arrives."""
        if not specs:
            return
        run_dir = Path(run_dir).absolute()  # a worker's current folder is not the driver's
        box = self._event_box()
        task = self.ray.remote(_run_on_worker).options(
            num_cpus=self.resources.cpus, num_gpus=self.resources.gpus, max_retries=self.retries
        )
        relay = _Relay(on_event)
        limits = {spec.key: time_limit(spec.budget, self.grace) for spec in specs}
        refs: dict[str, Any] = {}
        stopped: set[str] = set()  # cancelled past their limit

        def submit(spec: RunSpec) -> Any:
            refs[spec.key] = task.remote(self._placed(spec), run_dir, self.resources.threads, box, limits[spec.key])
            return refs[spec.key]

        def poll() -> None:
            try:
                relay.forward(self.ray.get(box.take.remote()))
            except self.ray.exceptions.RayError as error:  # progress is lost with its actor; results still come
                logger.debug("progress events: %s", error)
            for key in relay.overdue(limits, KILL_MARGIN_SECONDS) - stopped:
                stopped.add(key)
                with contextlib.suppress(Exception):  # finished meanwhile: its result stands
                    self.ray.cancel(refs[key], force=True)

        try:
            with contextlib.closing(self._as_finished(specs, submit, poll)) as finished:
                for spec, ref in finished:
                    relay.finished(spec.key)
                    yield self._result(spec, ref, limits[spec.key] if spec.key in stopped else None)
        finally:
            with contextlib.suppress(Exception):
                self.ray.kill(box)

    def _event_box(self) -> Any:
        """The actor the tasks send their events to, on the driver's node if it can be."""
        options: dict[str, Any] = {"num_cpus": 0}
        with contextlib.suppress(Exception):  # Ray Client, or a Ray without node affinity: anywhere will do
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            node = self.ray.get_runtime_context().get_node_id()
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id=node, soft=True)
        return self.ray.remote(**options)(_EventBox).remote()

    def check(
        self, archs: Sequence[str], data: DataSpec, steps: int, seed: int,
        model_kwargs: Mapping[str, Mapping[str, Any]], heads: Mapping[str, str],
    ) -> list[ArchCheck]:
        """``alrao check``'s items, one task per ARCH; the same list, in the same order, as in-process."""
        cpus = min(self.resources.cpus, 1.0)  # a check runs on one thread
        task = self.ray.remote(_check_on_worker).options(num_cpus=cpus, max_retries=self.retries)
        found: dict[int, list[ArchCheck]] = {}

        def submit(index: int) -> Any:
            return task.remote(archs[index], data, steps, seed, dict(model_kwargs), dict(heads))

        with contextlib.closing(self._as_finished(range(len(archs)), submit)) as finished:
            for index, ref in finished:
                found[index] = self._checks(archs[index], ref)
        return [check for index in range(len(archs)) for check in found[index]]

    # -- scheduling ----------------------------------------------------------------------------------
    def _as_finished(
        self, items: Iterable[_T], submit: Callable[[_T], Any], poll: Callable[[], None] = lambda: None
    ) -> Iterator[tuple[_T, Any]]:
        """Submit ``items`` in order, at most ``in_flight`` at once; yield each with its
        finished task. ``poll`` runs between waits. Closed early (Ctrl-C, ``--fail-fast``),
        it cancels the tasks still in flight."""
        waiting = list(items)
        waiting.reverse()  # popped from the end: first submitted first
        in_flight: dict[Any, _T] = {}
        limit = self.resources.in_flight
        try:
            while waiting or in_flight:
                while waiting and (limit is None or len(in_flight) < limit):
                    item = waiting.pop()
                    in_flight[submit(item)] = item
                ready = self._wait(list(in_flight))
                poll()
                for ref in ready:
                    yield in_flight.pop(ref), ref
        finally:
            if in_flight:
                self._cancel(list(in_flight))

    def _wait(self, refs: list[Any]) -> list[Any]:
        ready, rest = self.ray.wait(refs, num_returns=1, timeout=POLL_SECONDS)
        if ready and rest:
            more, _ = self.ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        return ready

    def _cancel(self, refs: list[Any]) -> None:
        """Stop the tasks in flight (their worker processes end; each run keeps its last
        checkpoint) and wait a little for them to go, so that none still writes into
        the run directory once the study has returned."""
        for ref in refs:
            try:
                self.ray.cancel(ref, force=True)
            except Exception as error:  # noqa: BLE001 - already finished, or its node gone: nothing to stop
                logger.debug("cancelling a task: %s", error)
        with contextlib.suppress(Exception):
            self.ray.wait(refs, num_returns=len(refs), timeout=CANCEL_SECONDS)

    # -- results -----------------------------------------------------------------------------------
    def _placed(self, spec: RunSpec) -> RunSpec:
        """A run given GPUs trains on CUDA, on the GPU(s) Ray makes visible to its task,
        even when the driver, which planned it, has none."""
        if self.resources.gpus > 0 and not spec.device.startswith("cuda"):
            return replace(spec, device="cuda")
        return spec

    def _result(self, spec: RunSpec, ref: Any, stopped_at: float | None = None) -> RunResult:
        """The run's result; a failed one if Ray lost it, or "timed out" if the driver
        cancelled it at ``stopped_at`` seconds (its time limit) and it had not finished."""
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayError as error:
            from alrao_cli.study.attempt import failed_result

            if stopped_at is not None:
                return failed_result(spec, timed_out_reason(spec.budget, stopped_at), status="timed out")
            return failed_result(spec, self._lost_reason(error))

    def _checks(self, arch: str, ref: Any) -> list[ArchCheck]:
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayError as error:
            from alrao_cli.study.check import CHECK_ITEMS, ArchCheck, ItemResult

            skipped = tuple(ItemResult(name, "skipped", 0.0) for name in CHECK_ITEMS[1:])
            return [ArchCheck(arch, (ItemResult(CHECK_ITEMS[0], "failed", 0.0, self._lost_reason(error)), *skipped))]

    def _lost_reason(self, error: Exception) -> str:
        """One line for a task Ray could not bring back: how it was lost, and how often."""
        exceptions = self.ray.exceptions
        if isinstance(error, exceptions.RayTaskError):  # alrao's own code failed on the worker, not the model
            cause = error.cause if isinstance(error.cause, BaseException) else error
            return f"on its Ray worker: {one_line_reason(cause)}"
        if isinstance(error, exceptions.OutOfMemoryError):
            how = "Ray stopped its worker for lack of memory on the node"
        elif isinstance(error, exceptions.NodeDiedError):
            how = "its node was lost"
        elif isinstance(error, exceptions.WorkerCrashedError):
            how = "its worker process died (killed, or out of memory)"
        else:
            how = f"Ray lost it ({one_line_reason(error)})"
        tries = self.retries + 1
        return f"{how}, {tries} time{'s' if tries > 1 else ''} (--retries {self.retries})"


# -- on the workers ------------------------------------------------------------------------------------
def _run_on_worker(spec: RunSpec, run_dir: Path, threads: int, box: Any, limit: float | None) -> RunResult:
    """One run, in a Ray worker process: the task every run is. ``limit``: its time limit
    (None: none), kept by the watchdog on the worker's main thread, where Ray runs tasks."""
    import torch

    from alrao_cli.study.attempt import execute_run
    from alrao_cli.study.torch_startup import skip_dynamo_import_for_optimizers

    skip_dynamo_import_for_optimizers()
    torch.set_num_threads(threads)
    send = _Sender(box)
    send(RunStarted(spec.key))
    # Standard output is the driver's, for tables and --json: what a model prints goes to stderr.
    with contextlib.redirect_stdout(sys.stderr):
        result = execute_run(spec, run_dir, send, limit)
    send.flush()
    return result


def _check_on_worker(
    arch: str, data: DataSpec, steps: int, seed: int,
    model_kwargs: dict[str, Mapping[str, Any]], heads: dict[str, str],
) -> list[ArchCheck]:
    """``alrao check``'s items for one ARCH, in a Ray worker process."""
    from alrao_cli.data.load import cached_data
    from alrao_cli.study.check import run_checks
    from alrao_cli.study.torch_startup import skip_dynamo_import_for_optimizers

    skip_dynamo_import_for_optimizers()
    with contextlib.redirect_stdout(sys.stderr):
        return run_checks([arch], cached_data(data), steps=steps, seed=seed, model_kwargs=model_kwargs, heads=heads)


class _EventBox:
    """An actor holding the events the tasks send until the driver takes them."""

    def __init__(self) -> None:
        self.events: list[RunEvent] = []

    def put(self, event: RunEvent | None) -> None:
        if event is not None:
            self.events.append(event)

    def take(self) -> list[RunEvent]:
        events, self.events = self.events, []
        return events


class _Sender:
    """A run's ``on_progress`` on a worker: each event to the box, without waiting for it.

    Progress inside an epoch goes at most every :data:`PROGRESS_SECONDS`; an epoch's end
    and a saved checkpoint always. Calls from one task reach the actor in order, so
    :meth:`flush` returns once everything sent before it is in the box.
    """

    def __init__(self, box: Any) -> None:
        self.box = box
        self.last = -math.inf

    def __call__(self, event: RunEvent) -> None:
        now = time.monotonic()
        if isinstance(event, Progress) and not _milestone(event) and now - self.last < PROGRESS_SECONDS:
            return
        self.last = now
        self.box.put.remote(event)

    def flush(self) -> None:
        import ray

        try:
            ray.get(self.box.put.remote(None))
        except ray.exceptions.RayError:
            pass  # the box is gone (its node lost): progress is best effort, the result is not


def _milestone(progress: Progress) -> bool:
    """An epoch's end (its validation loss) or a checkpoint just saved: never left out."""
    return progress.val_loss is not None or getattr(progress, "checkpointed", False)


class _Relay:
    """The driver's side: events to the study's observer, each run started once (a retried
    run starts again on its worker), nothing of a run whose result is in."""

    def __init__(self, on_event: EventCallback) -> None:
        self.on_event = on_event
        self.started: dict[str, float] = {}  # when the driver heard each run start (its first attempt)
        self.done: set[str] = set()

    def forward(self, events: list[RunEvent]) -> None:
        for event in events:
            if event.key in self.done or (isinstance(event, RunStarted) and event.key in self.started):
                continue
            if isinstance(event, RunStarted):
                self.started[event.key] = time.monotonic()
            self.on_event(event)

    def finished(self, key: str) -> None:
        self.done.add(key)

    def overdue(self, limits: Mapping[str, float | None], margin: float) -> set[str]:
        """The runs started, not finished, and more than ``margin`` seconds past their limit."""
        now = time.monotonic()
        return {
            key for key, started in self.started.items()
            if key not in self.done and limits.get(key) is not None and now - started > limits[key] + margin
        }
