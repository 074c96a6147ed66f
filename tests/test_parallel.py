"""Runs side by side on Ray (``--workers``), against the same study run in-process.

One real local Ray (2 CPUs, no GPU, no dashboard) serves the whole module: tests in this
process use it as it is, and a study started as a subprocess joins it with
``--ray-address``, so that Ray starts once (about 15 s on a 2-core machine), not per test.
The tests that need no Ray come first, while none is started.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import invoke, load_results, quick_flags, without_seconds

QUICK = [*quick_flags(256, epochs=2), "--quiet"]
SEQUENTIAL = ["--threads-per-run", "1"]  # the thread count each worker gets on 2 cores with --workers 2

# Its 12th training forward kills its own process, once (the marker file says it did), and
# never in the test's process, where the sequential reference and the preflight run.
# Dropout: the retried run must get torch's generator back from the checkpoint.
KILLS_ITSELF_ONCE = """
import os
import signal
from pathlib import Path

from torch import nn

MARKER = Path({marker!r})
SPARED = {spared}


class KillsItselfOnce(nn.Module):
    def __init__(self, num_classes, input_shape):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(input_shape[0], 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, num_classes)
        )
        self.forwards = 0

    def forward(self, x):
        if self.training:
            self.forwards += 1
            if self.forwards == 12 and os.getpid() != SPARED and not MARKER.exists():
                MARKER.write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)
        return self.net(x)
"""

# Waits at its 6th training step, after the checkpoint of its 5th (--checkpoint-every 5),
# for as long as the hold file exists: a run certainly in flight when the study is
# interrupted. Never in the test's process; the wait changes no number.
HELD_MODEL = """
import os
import time
from pathlib import Path

from torch import nn

HOLD = Path({hold!r})
SPARED = {spared}


class Held(nn.Module):
    def __init__(self, num_classes, input_shape):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(input_shape[0], 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, num_classes))
        self.forwards = 0

    def forward(self, x):
        if self.training:
            self.forwards += 1
            while self.forwards == 6 and HOLD.exists() and os.getpid() != SPARED:
                time.sleep(0.01)
        return self.net(x)
"""

# Never returns from its first training forward on a worker: in a sleep the worker's
# watchdog can interrupt, or, with SIGALRM blocked, as a hang in native code would.
STUCK_MODEL = """
import os
import signal
import time

from torch import nn

SPARED = {spared}


class Stuck(nn.Module):
    def __init__(self, num_classes, input_shape):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], num_classes))

    def forward(self, x):
        if self.training and os.getpid() != SPARED:
            if {deaf}:
                signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGALRM}})
            time.sleep(3600)
        return self.net(x)
"""

BROKEN_FORWARD = """
from torch import nn


class Broken(nn.Module):
    def __init__(self, num_classes, input_shape):
        super().__init__()
        self.head = nn.Linear(input_shape[0], num_classes)

    def forward(self, x):
        raise RuntimeError("this model is broken on purpose")
"""


@pytest.fixture(scope="module")
def ray_address(isolated_cache):
    """One local Ray for the module; its address, for studies run as subprocesses."""
    ray = pytest.importorskip("ray")
    sigterm = signal.getsignal(signal.SIGTERM)  # ray.init replaces the handler of its process
    context = ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, logging_level=logging.WARNING)
    try:
        yield context.address_info["gcs_address"]
    finally:
        ray.shutdown()
        signal.signal(signal.SIGTERM, sigterm)


def runs_by_key(out: Path) -> dict[str, dict]:
    return {run["key"]: without_seconds(run) for run in load_results(out)["runs"]}


def one_line_error(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


# -- no Ray needed -------------------------------------------------------------------------------
BAD_FLAGS = [
    (["--workers", "0"], "--workers must be at least 1, got 0"),
    (["--threads-per-run", "0"], "--threads-per-run must be at least 1, got 0"),
    (["--cpus-per-run", "0"], "--cpus-per-run must be positive, got 0"),
    (["--gpus-per-run", "-1"], "--gpus-per-run must be zero or positive, got -1"),
    (["--retries", "-1"], "--retries must be at least 0, got -1"),
    (["--gpus-per-run", "0.5", "--device", "cpu"], "--gpus-per-run 0.5 reserves GPUs, but --device cpu trains on the CPU"),
]


@pytest.mark.parametrize("flags, message", BAD_FLAGS, ids=[" ".join(flags) for flags, _ in BAD_FLAGS])
def test_a_bad_execution_flag_is_one_line(tmp_path, flags, message):
    out = tmp_path / "run"
    line = one_line_error(invoke("screen", "mlp", *QUICK, *flags, "--out", str(out)))
    assert message in line and not out.exists()


def test_without_ray_one_worker_runs_and_asking_for_more_says_how_to_install_ray(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails, as where it is not installed
    assert invoke("screen", "mlp", *QUICK, "--out", str(tmp_path / "one")).exit_code == 0  # never imports it
    out = tmp_path / "two"
    line = one_line_error(invoke("screen", "mlp", *QUICK, "--workers", "2", "--out", str(out)))
    assert "--workers 2 runs on Ray, which is not installed" in line and 'pip install "alrao-cli[ray]"' in line
    assert not out.exists()
    line = one_line_error(invoke("check", "mlp", "--ray-address", "auto"))
    assert 'pip install "alrao-cli[ray]"' in line


def test_gpus_on_a_machine_without_one_are_refused_at_once(tmp_path):
    out = tmp_path / "run"
    started = time.monotonic()
    line = one_line_error(invoke("screen", "mlp", *QUICK, "--gpus-per-run", "1", "--out", str(out)))
    assert "--gpus-per-run 1: this machine" in line and "has no GPU" in line  # its Ray, if the module's is up
    assert time.monotonic() - started < 10 and not out.exists()  # refused, not left waiting for a GPU


def ray_processes_of(driver: int) -> list[str]:
    """Command lines of live processes of the Ray a driver with this pid started (Ray names
    its session folder after the driver: ``session_<time>_<pid>``)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            line = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if re.search(rf"session_[\w-]+_{driver}\b", line):
                found.append(line)
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the processes from /proc")
def test_workers_without_an_address_start_a_quiet_local_ray_and_shut_it_down(tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "run"
    command = [sys.executable, "-m", "alrao_cli", "screen", "mlp", *QUICK, "--workers", "2", "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = process.communicate(timeout=240)
    assert process.returncode == 0, stderr
    assert [run["status"] for run in load_results(out)["runs"]] == ["ok"] and "mlp" in stdout
    assert "WARNING" not in stderr and "Traceback" not in stderr, stderr  # Ray's start-up notices kept out
    deadline = time.monotonic() + 10
    while ray_processes_of(process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not ray_processes_of(process.pid)  # the command's own Ray ended with it


# -- on the module's Ray ---------------------------------------------------------------------------
def test_gpus_on_a_cluster_without_one_are_refused_at_once(ray_address, tmp_path):
    out = tmp_path / "run"
    started = time.monotonic()
    flags = ["--gpus-per-run", "0.5", "--ray-address", ray_address]
    line = one_line_error(invoke("screen", "mlp", *QUICK, *flags, "--out", str(out)))
    assert f"--gpus-per-run 0.5: the Ray cluster at {ray_address} has no GPU" in line
    assert time.monotonic() - started < 10 and not out.exists()


class Recorder:
    """A study observer that writes down what it hears, in order."""

    def __init__(self) -> None:
        self.heard: list[tuple[str, str, object]] = []

    def study_started(self, plan, done, resumed) -> None:
        pass

    def run_started(self, spec, index, total) -> None:
        self.heard.append(("started", spec.key, index))

    def run_progress(self, progress) -> None:
        self.heard.append(("progress", progress.key, progress.val_loss))

    def run_finished(self, result) -> None:
        self.heard.append(("finished", result.key, result.status))


def test_two_workers_give_the_sequential_results_run_by_run(ray_address, tmp_path):
    from alrao_cli.config.schema import build_config, build_execution
    from alrao_cli.study.driver import run_study

    archs = ["mlp", "cnn1d", "resnet_small"]
    sequential, parallel = tmp_path / "sequential", tmp_path / "parallel"
    assert invoke("screen", *archs, *QUICK, *SEQUENTIAL, "--out", str(sequential)).exit_code == 0
    config = build_config(None, {"archs": archs, "subset": 256, "epochs": 2, "plots": False, "out": str(parallel)})
    recorder = Recorder()
    outcome = run_study(config, "screen", observer=recorder, execution=build_execution({"workers": 2}))
    assert outcome.exit_code == 0
    assert runs_by_key(parallel) == runs_by_key(sequential) and len(runs_by_key(parallel)) == 3
    assert not (parallel / "checkpoints").exists()
    # The workers' progress reached the observer in this process: each run started once,
    # then its progress (both epoch ends among it), then its result.
    for key in runs_by_key(parallel):
        heard = [(what, detail) for what, run, detail in recorder.heard if run == key]
        assert heard[0][0] == "started" and heard[-1] == ("finished", "ok")
        assert [what for what, _ in heard[1:-1]] == ["progress"] * (len(heard) - 2)
        assert sum(detail is not None for what, detail in heard[1:-1]) == 2  # a validation loss per epoch


def test_a_killed_worker_is_retried_from_its_checkpoint_to_the_same_result(ray_address, tmp_path):
    marker = tmp_path / "killed"
    model = tmp_path / "kills_itself.py"
    model.write_text(KILLS_ITSELF_ONCE.format(marker=str(marker), spared=os.getpid()))
    archs = ["mlp", str(model)]
    flags = [*QUICK, "--checkpoint-every", "5"]
    reference, retried = tmp_path / "reference", tmp_path / "retried"
    assert invoke("screen", *archs, *flags, *SEQUENTIAL, "--out", str(reference)).exit_code == 0
    assert not marker.exists()
    result = invoke("screen", *archs, *flags, "--workers", "2", "--out", str(retried))
    assert result.exit_code == 0, result.output
    assert marker.exists() and int(marker.read_text()) != os.getpid()  # a worker did die
    assert runs_by_key(retried) == runs_by_key(reference)
    assert {run["status"] for run in runs_by_key(retried).values()} == {"ok"}


def test_a_worker_that_keeps_dying_fails_a_run_past_its_time_limit_times_out_and_the_study_goes_on(
    ray_address, tmp_path, monkeypatch
):
    from alrao_cli.study import ray_executor

    monkeypatch.setattr(ray_executor, "KILL_MARGIN_SECONDS", 1.0)
    dies = tmp_path / "always_dies.py"
    every_time = KILLS_ITSELF_ONCE.replace("and not MARKER.exists()", "").replace("self.forwards == 12", "self.forwards == 3")
    dies.write_text(every_time.format(marker=str(tmp_path / "died"), spared=os.getpid()))
    sleeps, deaf = tmp_path / "sleeps", tmp_path / "deaf"
    for folder, blocked in ((sleeps, False), (deaf, True)):
        folder.mkdir()
        (folder / "stuck.py").write_text(STUCK_MODEL.format(spared=os.getpid(), deaf=blocked))
    stuck = [f"{sleeps / 'stuck.py'}:Stuck", f"{deaf / 'stuck.py'}:Stuck"]
    out = tmp_path / "run"
    # A grace of 4 s: the healthy mlp loads its data and builds in a fresh worker within it, even on a busy machine.
    flags = [*quick_flags(256), "--quiet", "--time-budget", "0.5", "--time-grace", "4"]
    result = invoke("screen", "mlp", str(dies), *stuck, *flags, "--workers", "2", "--retries", "0", "--out", str(out))
    assert result.exit_code == 1, result.output
    runs = {run["arch"]: run for run in load_results(out)["runs"]}
    assert runs["mlp"]["status"] == "ok"
    assert runs[str(dies)] | {"status": "failed"} == runs[str(dies)]
    assert runs[str(dies)]["reason"] == "its worker process died (killed, or out of memory), 1 time (--retries 0)"
    reason = "stopped 4.5 s after it started, still running past its 0.5 s --time-budget"
    for arch in stuck:  # stopped by the worker's watchdog, then (SIGALRM blocked) by the driver
        assert runs[arch]["status"] == "timed out" and runs[arch]["reason"].startswith(reason), runs[arch]


def test_ctrl_c_stops_the_workers_and_resume_with_workers_finishes_the_study(ray_address, tmp_path):
    hold = tmp_path / "hold"
    hold.touch()
    model = tmp_path / "held.py"
    model.write_text(HELD_MODEL.format(hold=str(hold), spared=os.getpid()))
    study = ["mlp", str(model), *QUICK[:-1], "--checkpoint-every", "5"]
    reference, out = tmp_path / "reference", tmp_path / "run"
    command = [sys.executable, "-m", "alrao_cli", "screen", *study, "--workers", "2", "--ray-address", ray_address]
    process = subprocess.Popen([*command, "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # While the study starts up (a new Ray job gets its own worker processes), the reference.
    assert invoke("screen", *study, *SEQUENTIAL, "--quiet", "--out", str(reference)).exit_code == 0
    deadline = time.monotonic() + 240  # generous: a loaded CI machine starts Ray workers slowly
    while not (out / "results.json").exists() or not load_results(out)["runs"] or not list(
        (out / "checkpoints").glob("*held*.pt")
    ):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()  # the held run never ends by itself: never wait for it
            pytest.fail(f"the study ended or stalled before its held run checkpointed:\n{process.communicate()[1]}")
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "mlp" in stdout  # the partial ranking
    assert f"alrao screen --resume {out}" in stderr and "Traceback" not in stderr
    saved = load_results(out)
    assert saved["interrupted"] is True and [run["arch"] for run in saved["runs"]] == ["mlp"]
    assert list((out / "checkpoints").glob("*held*.pt"))  # the run in flight kept its checkpoint

    hold.unlink()
    result = invoke("screen", "--resume", str(out), "--workers", "2", "--quiet")
    assert result.exit_code == 0, result.output
    assert "ignored" not in result.output  # --workers is not a study option a resume would ignore
    assert runs_by_key(out) == runs_by_key(reference)
    assert load_results(out)["interrupted"] is False and not (out / "checkpoints").exists()


def test_sigterm_ends_a_study_on_workers_as_terminated_not_interrupted(ray_address, tmp_path):
    # Ray turns what a signal handler raises during its waits into a plain KeyboardInterrupt:
    # the study must still tell SIGTERM (143) from Ctrl-C (130).
    hold = tmp_path / "hold"
    hold.touch()
    model = tmp_path / "held.py"
    model.write_text(HELD_MODEL.format(hold=str(hold), spared=os.getpid()))
    out = tmp_path / "run"
    command = [sys.executable, "-m", "alrao_cli", "screen", str(model), *QUICK[:-1], "--checkpoint-every", "5",
               "--workers", "2", "--ray-address", ray_address, "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not list((out / "checkpoints").glob("*held*.pt")):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the study ended or stalled before its held run checkpointed:\n{process.communicate()[1]}")
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert "terminated (SIGTERM)" in stderr and f"alrao screen --resume {out}" in stderr and "Traceback" not in stderr
    assert load_results(out)["interrupted"] is True


def test_check_with_workers_writes_the_same_junit(ray_address, tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text(BROKEN_FORWARD)
    reports = {}
    for name, flags in (("sequential", []), ("parallel", ["--workers", "2"])):
        report = tmp_path / f"{name}.xml"
        result = invoke("check", "mlp", str(broken), "cnn1d", "--junit-xml", str(report), *flags)
        assert result.exit_code == 1, result.output
        reports[name] = re.sub(r' time="[0-9.]+"', "", report.read_text())
    assert reports["parallel"] == reports["sequential"]
    assert "this model is broken on purpose" in reports["parallel"] and f"{broken}:" in reports["parallel"]
