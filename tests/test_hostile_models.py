"""Model code cannot take a screen down or lie about it (docs/reliability.md).

Each test writes small model files that misbehave in one way (leave the process, change
process-wide settings, leave a thread, write to file descriptor 1, hang, ``os._exit``)
beside a healthy one, runs the command as a user would, and checks the exit code, the
one-line reason saved for the bad architecture and that the healthy one was ranked ok.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch

from support import invoke, load_results, quick_flags

from alrao_cli.study.train import TRAINED_NOTHING

FAST = quick_flags(64)
STEPS = ["--steps", "3"]

HEADER = "import math, os, sys, threading, time\n\nimport torch\nfrom torch import nn\n"


def model(folder: Path, name: str, *, top: str = "", init: str = "", forward: str = "") -> str:
    """A small MLP in ``folder/name.py``, with one line of misbehaviour where asked; its ARCH."""
    source = f'''{HEADER}
{top}


class {name}(nn.Module):
    def __init__(self, num_classes, input_shape):
        super().__init__()
        self.body = nn.Linear(math.prod(input_shape), 16)
        self.head = nn.Linear(16, num_classes)
        {init or "pass"}

    def forward(self, x):
        {forward or "pass"}
        return self.head(torch.relu(self.body(x.flatten(1))))
'''
    path = folder / f"{name.lower()}.py"
    path.write_text(source)
    return f"{path}:{name}"


def screen(tmp_path: Path, *args: str):
    out = tmp_path / "run"
    return invoke("screen", *args, *FAST, "--out", str(out)), out


def runs_of(out: Path) -> dict[str, dict]:
    """The saved runs by model class name."""
    return {run["arch"].rsplit(":", 1)[-1]: run for run in load_results(out)["runs"]}


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``alrao ARGS`` as a real process (what only a process shows: its exit, its file descriptors)."""
    return subprocess.run(
        [sys.executable, "-m", "alrao_cli", *args], capture_output=True, text=True, timeout=timeout,
    )


def test_sys_exit_in_forward_fails_its_architecture_and_the_screen_goes_on(tmp_path):
    archs = (
        model(tmp_path, "Exits", forward="sys.exit(0)"),
        model(tmp_path, "ExitsWhileTraining", forward="if self.training: sys.exit(0)"),
        model(tmp_path, "ExitsInInit", init="sys.exit(3)"),
        model(tmp_path, "Healthy"),
    )
    result, out = screen(tmp_path, *archs, *STEPS)
    assert result.exit_code == 1, result.output
    runs = runs_of(out)
    for name, code in (("Exits", 0), ("ExitsWhileTraining", 0), ("ExitsInInit", 3)):
        assert runs[name]["status"] == "failed"
        assert runs[name]["reason"].startswith(f"the model code called sys.exit({code}) (traceback: ")
    assert runs["Healthy"]["status"] == "ok"


def test_check_fails_the_item_that_called_sys_exit_and_still_writes_junit(tmp_path):
    report = tmp_path / "junit.xml"
    exits = model(tmp_path, "Exits", forward="sys.exit(0)")
    result = invoke("check", exits, model(tmp_path, "Healthy"), "--junit-xml", str(report))
    assert result.exit_code == 1, result.output
    assert "forward: the model code called sys.exit(0) (at " in result.output
    failures = [(case.get("classname"), case.get("name")) for case in ET.parse(report).iter("testcase") if case.find("failure") is not None]
    assert (exits, "forward") in failures
    assert not any(classname.endswith(":Healthy") for classname, _ in failures)


def test_a_keyboard_interrupt_raised_by_model_code_fails_its_run_and_resume_does_not_loop(tmp_path):
    archs = (
        model(tmp_path, "Interrupts", init="raise KeyboardInterrupt"),
        model(tmp_path, "InterruptsInForward", forward="if self.training: raise KeyboardInterrupt"),
        model(tmp_path, "Healthy"),
    )
    result, out = screen(tmp_path, *archs, *STEPS)
    assert result.exit_code == 1, result.output
    runs = runs_of(out)
    for name in ("Interrupts", "InterruptsInForward"):
        assert runs[name]["status"] == "failed"
        assert runs[name]["reason"].startswith("the model code raised KeyboardInterrupt (traceback: ")
    assert runs["Healthy"]["status"] == "ok" and load_results(out)["interrupted"] is False
    resumed = invoke("screen", "--resume", str(out))
    assert resumed.exit_code == 1 and "--resume" not in resumed.output  # nothing left to run, nothing interrupted
    assert runs_of(out) == runs


def test_memory_and_recursion_errors_fail_their_architecture_only(tmp_path):
    archs = (
        model(tmp_path, "Hungry", init="raise MemoryError()"),
        model(tmp_path, "HungryForward", forward="if self.training: raise MemoryError()"),
        model(tmp_path, "Recurses", forward="return self.forward(x)"),
        model(tmp_path, "RecursesInInit", init="self.__init__(num_classes, input_shape)"),
        model(tmp_path, "Healthy"),
    )
    result, out = screen(tmp_path, *archs, *STEPS)
    assert result.exit_code == 1, result.output
    runs = runs_of(out)
    assert runs["Hungry"]["status"] == "failed" and "failed: MemoryError" in runs["Hungry"]["reason"]
    assert runs["HungryForward"]["status"] == "failed"
    assert runs["HungryForward"]["reason"] == "out of memory on cpu (try a smaller --batch-size or model)"
    for name in ("Recurses", "RecursesInInit"):
        assert runs[name]["status"] == "failed" and "RecursionError: maximum recursion depth" in runs[name]["reason"]
    assert runs["Healthy"]["status"] == "ok"


def test_a_model_that_trains_nothing_is_failed_not_ranked(tmp_path):
    """Every parameter frozen: refused before training, for every method (Alrao would train only
    its own output copies). Rates too small to move a weight: trained, then flagged."""
    archs = model(tmp_path, "Frozen", init="self.requires_grad_(False)"), model(tmp_path, "Healthy")
    result, out = screen(tmp_path, *archs, *STEPS, "--baseline", "adam")
    assert result.exit_code == 1, result.output
    frozen = [run for run in load_results(out)["runs"] if run["arch"].endswith(":Frozen")]
    assert [run["method"] for run in frozen] == ["alrao", "adam"]
    for run in frozen:
        assert (run["status"], run["reason"]) == (
            "failed",
            f"{archs[0]}: every parameter is frozen (requires_grad=False): there is nothing to train "
            "(leave requires_grad on for the parameters the screen should train)",
        )
    assert {run["status"] for run in load_results(out)["runs"] if run["arch"].endswith(":Healthy")} == {"ok"}

    subnormal = invoke("screen", archs[1], *FAST, *STEPS, "--lr-min", "1e-320", "--lr-max", "2e-320", "--out", str(tmp_path / "tiny"))
    assert subnormal.exit_code == 1, subnormal.output
    (run,) = load_results(tmp_path / "tiny")["runs"]
    assert (run["status"], run["reason"]) == ("failed", TRAINED_NOTHING)


def test_a_model_that_changes_directory_does_not_move_the_results(tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(tmp_path)
    archs = model(tmp_path, "Wanders", forward=f"os.chdir({str(elsewhere)!r})"), model(tmp_path, "Healthy")
    result = invoke("screen", *archs, *FAST, *STEPS, "--out", "run")  # relative to where the screen began
    assert result.exit_code == 0, result.output
    assert {run["status"] for run in runs_of(tmp_path / "run").values()} == {"ok"}
    assert list(elsewhere.iterdir()) == [] and Path.cwd() == tmp_path


def test_a_default_dtype_set_by_one_file_does_not_reach_the_next(tmp_path):
    archs = (
        model(tmp_path, "DoubleFile", top="torch.set_default_dtype(torch.float64)"),
        model(tmp_path, "DoubleInit", init="torch.set_default_dtype(torch.float64)"),
        model(tmp_path, "Healthy"),
    )
    result, out = screen(tmp_path, *archs, *STEPS)
    runs = runs_of(out)
    assert runs["Healthy"]["status"] == "ok" and runs["DoubleFile"]["status"] == "ok", result.output
    assert torch.get_default_dtype() == torch.float32


def test_recursion_limit_thread_count_and_gradient_mode_are_put_back(tmp_path):
    limit, threads = sys.getrecursionlimit(), torch.get_num_threads()
    tinkers = "sys.setrecursionlimit(5000); torch.set_num_threads(1); torch.set_grad_enabled(False)"
    archs = model(tmp_path, "Tinkers", init=tinkers), model(tmp_path, "Healthy")
    result, out = screen(tmp_path, *archs, *STEPS)
    assert runs_of(out)["Healthy"]["status"] == "ok", result.output
    assert (sys.getrecursionlimit(), torch.get_num_threads(), torch.is_grad_enabled()) == (limit, threads, True)


def test_a_thread_left_running_by_a_model_does_not_keep_the_command_alive(tmp_path):
    spawns = "threading.Thread(target=time.sleep, args=(3600,), daemon=False).start()"
    archs = model(tmp_path, "Spawns", init=spawns), model(tmp_path, "Healthy")
    done = cli("screen", *archs, *FAST, *STEPS, "--out", str(tmp_path / "run"), "--quiet")
    assert done.returncode == 0, done.stderr
    assert "not waiting for thread(s) still running" in done.stderr


def test_output_written_to_file_descriptor_1_does_not_break_json(tmp_path):
    archs = model(tmp_path, "Noisy", forward="os.write(1, b'noise')"), model(tmp_path, "Healthy")
    done = cli("screen", *archs, *FAST, *STEPS, "--out", str(tmp_path / "run"), "--json")
    assert done.returncode == 0, done.stderr
    ranking = json.loads(done.stdout)["ranking"]
    assert {entry["status"] for entry in ranking} == {"ok"} and "noise" in done.stderr


def test_a_forward_that_never_returns_is_stopped_at_the_time_limit(tmp_path):
    archs = (
        model(tmp_path, "Sleeps", forward="time.sleep(3600)"),  # stopped in the preflight
        model(tmp_path, "Spins", forward="while self.training: pass"),  # stopped while training
        model(tmp_path, "Healthy"),
    )
    result, out = screen(tmp_path, *archs, "--time-budget", "0.5", "--time-grace", "1")
    assert result.exit_code == 1, result.output
    runs = runs_of(out)
    for name in ("Sleeps", "Spins"):
        assert runs[name]["status"] == "timed out"
        assert runs[name]["reason"].startswith("stopped 1.5 s after it started, still running past its 0.5 s --time-budget")
    assert runs["Healthy"]["status"] == "ok"


def test_isolate_survives_os_exit_in_forward(tmp_path):
    archs = model(tmp_path, "Vanishes", forward="if self.training: os._exit(3)"), model(tmp_path, "Healthy")
    result, out = screen(tmp_path, *archs, *STEPS, "--isolate")
    assert result.exit_code == 1, result.output
    runs = runs_of(out)
    assert runs["Vanishes"] == runs["Vanishes"] | {
        "status": "failed",
        "reason": "the run's process exited with code 3 without a result (os._exit or a crash in native code)",
    }
    assert runs["Healthy"]["status"] == "ok"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("sys.exit(0)", "loading the data: the data factory called sys.exit(0) (fix the data factory)"),
        ("raise KeyboardInterrupt", "loading the data: the data factory raised KeyboardInterrupt (fix the data factory)"),
        ("raise MemoryError()", "make() from {factory} at line 5 raised MemoryError:  (fix the factory)"),
        ("return make()", "make() from {factory} at line 5 raised RecursionError: maximum recursion depth exceeded"),
    ],
    ids=["sys.exit", "KeyboardInterrupt", "MemoryError", "RecursionError"],
)
def test_a_data_factory_that_leaves_or_exhausts_the_process_is_a_usage_error(tmp_path, body, message):
    factory = tmp_path / "data.py"
    factory.write_text(f"import sys\n\n\ndef make():\n    {body}\n")
    out = tmp_path / "run"
    result = invoke("screen", model(tmp_path, "Healthy"), "--data", f"python:{factory}:make", *STEPS, "--out", str(out))
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: " + message.format(factory=factory))
    assert not out.exists()  # nothing trained, no run directory left behind


@pytest.mark.parametrize(
    ("command", "body", "flags", "message"),
    [
        ("check", "sys.exit(0)", (), "loading the data: the data factory called sys.exit(0) (fix the data factory)"),
        ("screen", "os._exit(3)", ("--isolate",),
         "loading the data: the data factory's process exited with code 3 without a result (os._exit or a crash"),
        ("check", "os._exit(3)", ("--isolate",),
         "loading the data: the data factory's process exited with code 3 without a result (os._exit or a crash"),
    ],
    ids=["check sys.exit", "screen --isolate os._exit", "check --isolate os._exit"],
)
def test_a_data_factory_that_leaves_the_process_is_one_line_from_every_command(tmp_path, command, body, flags, message):
    """Without --isolate ``os._exit`` would end the command here with no message (docs/reliability.md)."""
    factory = tmp_path / "data.py"
    factory.write_text(f"import os\nimport sys\n\n\ndef make():\n    {body}\n")
    out = tmp_path / "run"
    extra = (*STEPS, "--out", str(out)) if command == "screen" else ()
    result = invoke(command, model(tmp_path, "Healthy"), "--data", f"python:{factory}:make", *flags, *extra)
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: " + message) and not out.exists()
