"""The run directory is checked, never trusted: one command at a time, an edited config or a
changed model file is refused on resume (or, with --force, the changed models start again)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from support import quick_settings

from alrao_cli.cli.app import app
from alrao_cli.config.schema import build_config
from alrao_cli.errors import AlraoUserError
from alrao_cli.study.driver import run_study
from alrao_cli.study.rundir import CONFIG_FILE, changed_sources, locked, read_config, source_files

QUICK = quick_settings(64, steps=3, batch_size=16, device="cpu")
MODEL = (
    "from torch import nn\n"
    "def build_model(num_classes, input_shape):\n"
    "    return nn.Sequential(nn.Linear(input_shape[0], {width}), nn.ReLU(), nn.Linear({width}, num_classes))\n"
)

HOLD = """
import sys, time
from pathlib import Path
from alrao_cli.study.rundir import locked
with locked(Path(sys.argv[1])):
    Path(sys.argv[2]).write_text("held")
    time.sleep(60)
"""


def wait_for(path: Path, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_a_second_command_on_a_run_directory_is_refused_at_once(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir), str(tmp_path / "held")])
    try:
        wait_for(tmp_path / "held")
        started = time.monotonic()
        with pytest.raises(AlraoUserError, match=rf"{run_dir} is in use by alrao \(pid {holder.pid}\)"):
            run_study(build_config(None, {**QUICK, "archs": ["mlp"], "out": str(run_dir)}), "screen")
        assert time.monotonic() - started < 30
        assert not (run_dir / CONFIG_FILE).exists()  # the refused command wrote nothing
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir), str(tmp_path / "held")])
    wait_for(tmp_path / "held")
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (run_dir / ".lock").exists()
    with locked(run_dir):
        assert f"pid {os.getpid()}" in (run_dir / ".lock").read_text()


@pytest.fixture
def finished(tmp_path):
    models = tmp_path / "models.py"
    models.write_text(MODEL.format(width=8))
    run_dir = tmp_path / "run"
    outcome = run_study(build_config(None, {**QUICK, "archs": ["mlp", str(models)], "out": str(run_dir)}), "screen")
    assert outcome.exit_code == 0
    return run_dir, models


@pytest.mark.parametrize(
    "edit",
    [lambda text: text.replace("steps: 3", "steps: 30"), lambda text: text[: len(text) // 2]],
    ids=["edited", "truncated"],
)
def test_resume_refuses_a_config_changed_since_the_run_began(finished, edit):
    run_dir, _ = finished
    config = run_dir / CONFIG_FILE
    config.write_text(edit(config.read_text()))
    with pytest.raises(AlraoUserError, match="config.yaml was changed since the run began"):
        read_config(run_dir)
    result = CliRunner().invoke(app, ["screen", "--resume", str(run_dir)])
    assert result.exit_code == 2 and "changed since the run began" in result.output
    assert "Traceback" not in result.output


def test_a_config_written_before_digests_still_resumes(finished):
    run_dir, _ = finished
    config = run_dir / CONFIG_FILE
    config.write_text(config.read_text().split("\n", 1)[1])  # no digest line: an older run
    assert read_config(run_dir).steps == 3


def test_resume_refuses_a_changed_model_file_and_force_trains_it_again(finished):
    run_dir, models = finished
    before = {run["key"]: run for run in json.loads((run_dir / "results.json").read_text())["runs"]}
    models.write_text(MODEL.format(width=12))
    assert changed_sources(run_dir) == [str(models)]

    refused = CliRunner().invoke(app, ["screen", "--resume", str(run_dir)])
    assert refused.exit_code == 2, refused.output
    assert "models.py changed since the run began" in refused.output and "--force" in refused.output

    # A new process, as a user's next command is: this one holds the file's first version imported.
    forced = subprocess.run(
        [sys.executable, "-m", "alrao_cli", "screen", "--resume", str(run_dir), "--force", "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert forced.returncode == 0, forced.stderr
    after = {run["key"]: run for run in json.loads((run_dir / "results.json").read_text())["runs"]}
    retrained = next(key for key in after if "models.py" in key)
    assert after[retrained]["params"] != before[retrained]["params"]  # 12 hidden units now, not 8
    assert after["mlp|alrao|seed=0"] == before["mlp|alrao|seed=0"]  # untouched
    assert changed_sources(run_dir) == []  # the new content is the reference from now on


def test_force_without_resume_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(app, ["screen", "mlp", "--force", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "--force only applies with --resume" in result.output


def test_source_files_are_the_model_files_of_canonical_archs():
    assert source_files(["/a/m.py:Net", "/a/m.py:Other", "mlp", "torchvision:resnet18", "/b/x.py"]) == ["/a/m.py", "/b/x.py"]


def _resume_target(tmp_path: Path, what: str) -> tuple[Path, str]:
    """A path --resume cannot continue, and the start of what it must be called."""
    if what == "missing":
        return tmp_path / "no" / "such-run", "no such run directory"
    if what == "file":
        a_file = tmp_path / "a-file"
        a_file.write_text("kept\n")
        return a_file, "a file, not a run directory"
    empty = tmp_path / "empty"
    empty.mkdir()
    return empty, f"not a run directory (no {CONFIG_FILE} in it)"


@pytest.mark.parametrize("kind", ["screen", "compare"])
@pytest.mark.parametrize("what", ["missing", "file", "empty-folder"])
def test_resume_of_something_that_is_not_a_run_directory_says_what_it_is(tmp_path, what, kind):
    path, said = _resume_target(tmp_path, what)
    before = sorted(tmp_path.rglob("*"))
    result = CliRunner().invoke(app, [kind, "--resume", str(path)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    (line,) = result.output.splitlines()
    assert line.startswith(f"error: --resume {path}: {said} (")
    assert f"runs/<timestamp>-{kind}" in line and "output directory" not in line and "choose another folder" not in line
    assert sorted(tmp_path.rglob("*")) == before  # nothing created, the file left as it was
