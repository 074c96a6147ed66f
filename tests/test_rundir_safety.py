"""The run directory is checked, never trusted: a link where alrao reads or writes is refused
and left as it was, a full disk stops the study without failing the run it cut off (and
``--resume`` continues it), and a results.json or sources.json edited into something
Python's json would choke on or silently misread is one line, not a traceback."""

from __future__ import annotations

import errno
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from support import invoke, load_results, quick_settings, stop_at, write_files

from alrao_cli.config.schema import build_config
from alrao_cli.data.load import cached_data
from alrao_cli.errors import AlraoUserError
from alrao_cli.results.records import run_key
from alrao_cli.study.checkpoint import checkpoint_path
from alrao_cli.study.driver import listening, run_study
from alrao_cli.study.plan import data_spec_of
from alrao_cli.study.rundir import CONFIG_FILE, changed_sources, locked, read_config, record_sources, write_config
from alrao_cli.util import files
from alrao_cli.util.files import RunDirectoryError
from alrao_cli.util.pyfile import import_user_file

QUICK = quick_settings(64, steps=2, batch_size=16, device="cpu")
DEEP_JSON = "[" * 100_000 + "]" * 100_000
CORRUPT_HINT = "(it was not written by alrao or was edited by hand; rerun the study)"
SOURCES_HINT = "(it was edited since the run began; put it back as it was, or start a new run)"

# Two models whose checkpoints straddle the file-size limit of the disk-full test.
MODELS = """
from torch import nn

class Small(nn.Module):
    def __init__(self, num_classes, input_shape):
        super().__init__()
        self.body = nn.Linear(input_shape[0], 4)
        self.head = nn.Linear(4, num_classes)

    def forward(self, x):
        return self.head(self.body(x).relu())

class Big(nn.Module):  # checkpoints of about 1.2 MB (Small's: 23 kB)
    def __init__(self, num_classes, input_shape):
        super().__init__()
        self.body = nn.Linear(input_shape[0], 2000)
        self.head = nn.Linear(2000, num_classes)

    def forward(self, x):
        return self.head(self.body(x).relu())
"""
FILE_SIZE_LIMIT = 200_000  # bytes: the config, the results and Small's checkpoint fit, Big's does not


def error_lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.strip()]


def copy_run(source: Path, tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    shutil.copytree(source, run_dir, symlinks=True)
    return run_dir


def contents(path: Path) -> dict[str, bytes]:
    """A file's bytes, or every file's under a folder, by name: what must not change."""
    files = sorted(path.rglob("*")) if path.is_dir() else [path]
    return {str(file.relative_to(path.parent)): file.read_bytes() for file in files}


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory) -> Path:
    """A run directory stopped in its second run, right after a checkpoint: every file a resume reads and writes."""
    run_dir = tmp_path_factory.mktemp("interrupted") / "run"
    config = build_config(None, {**QUICK, "archs": ["mlp"], "seeds": 2, "checkpoint_every": 1, "out": str(run_dir)})
    with listening(stop_at(1, key_part="seed=1")):
        assert run_study(config, "screen").interrupted
    assert len(list((run_dir / "checkpoints").iterdir())) == 1
    return run_dir


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    assert run_study(build_config(None, {**QUICK, "archs": ["mlp"], "out": str(run_dir)}), "screen").exit_code == 0
    return run_dir


@pytest.mark.parametrize("name", ["results.json", "config.yaml", ".lock", "checkpoints", "checkpoints/*"])
def test_a_linked_file_or_folder_in_a_run_directory_is_refused_and_left_as_it_was(interrupted, tmp_path, name):
    run_dir = copy_run(interrupted, tmp_path)
    entry = next(run_dir.glob(name))
    target = tmp_path / "elsewhere" / entry.name
    target.parent.mkdir()
    entry.rename(target)
    entry.symlink_to(target)
    target_before, results_before = contents(target), (run_dir / "results.json").read_bytes()

    result = invoke("screen", "--resume", str(run_dir), catch_exceptions=True)

    assert result.exit_code == 2, result.output
    assert error_lines(result) == [
        (
            f"error: {entry} is a symbolic link: alrao does not write through links in a run directory "
            "(put the file or folder itself in its place, or remove the link)"
        )
    ]
    assert entry.is_symlink() and contents(target) == target_before  # neither replaced nor written through
    assert (run_dir / "results.json").read_bytes() == results_before


@pytest.mark.parametrize("isolate", [[], ["--isolate"]], ids=["in-process", "isolate"])
def test_a_full_disk_stops_the_study_without_failing_the_run_and_resume_completes_it(tmp_path, isolate):
    models = write_files(tmp_path / "models", {"models.py": MODELS}) / "models.py"
    cached_data(data_spec_of(build_config(None, QUICK)))  # the dataset's cache is written before the limit
    run_dir = tmp_path / "run"
    command = [
        sys.executable, "-m", "alrao_cli", "screen", f"{models}:Small", f"{models}:Big", "--subset", "64",
        "--steps", "2", "--batch-size", "16", "--no-plots", "--device", "cpu", "--quiet", "--out", str(run_dir),
        *isolate,  # the child that ran Big says so; it does not fail Big's run
    ]

    def file_size_limit() -> None:  # in the child: a write past the limit fails with EFBIG, no SIGXFSZ kill
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))

    full = subprocess.run(command, preexec_fn=file_size_limit, capture_output=True, text=True, timeout=300, check=False)

    big = checkpoint_path(run_dir, run_key(f"{models}:Big", "alrao", None, 0))
    assert full.returncode == 2, full.stderr
    assert full.stderr.strip().splitlines() == [
        f"error: cannot write {big}: File too large (free some space, then continue with --resume {run_dir})"
    ]
    saved = load_results(run_dir)
    assert [(run["arch"], run["status"]) for run in saved["runs"]] == [(f"{models}:Small", "ok")]  # Big is pending
    assert not (run_dir / "errors").exists()

    resumed = invoke("screen", "--resume", str(run_dir), "--quiet")

    assert resumed.exit_code == 0, resumed.output
    after = load_results(run_dir)
    statuses = [(run["arch"], run["status"]) for run in after["runs"]]
    assert statuses == [(f"{models}:Small", "ok"), (f"{models}:Big", "ok")]  # the run cut off trained, not failed
    assert after["runs"][0] == saved["runs"][0]  # kept, not trained again
    assert after["finished"] is not None and not (run_dir / "checkpoints").exists()


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("results.json", DEEP_JSON, "{run_dir}/results.json is corrupt: nested deeper than 64 levels " + CORRUPT_HINT),
        (
            "sources.json", DEEP_JSON,
            "--resume {run_dir}: sources.json is corrupt: nested deeper than 64 levels " + SOURCES_HINT,
        ),
        (
            "config.yaml", "archs: " + "[" * 100_000 + "]" * 100_000,  # no digest line: read as a config of before them
            "invalid YAML in {run_dir}/config.yaml: nested too deeply (no option nests more than a few levels)",
        ),
    ],
    ids=["results.json", "sources.json", "config.yaml"],
)
def test_a_deeply_nested_file_is_refused_in_one_line(finished, tmp_path, name, text, expected):
    run_dir = copy_run(finished, tmp_path)
    (run_dir / name).write_text(text)
    results_before = (run_dir / "results.json").read_bytes()

    result = invoke("screen", "--resume", str(run_dir), catch_exceptions=True)

    assert result.exit_code == 2, result.output
    assert error_lines(result) == [f"error: {expected.format(run_dir=run_dir)}"]
    assert (run_dir / "results.json").read_bytes() == results_before


@pytest.mark.parametrize(
    ("name", "edit", "expected"),
    [
        (
            "results.json", lambda text: text.replace("{", '{"runs": [], ', 1),  # Python's json keeps the last
            "{run_dir}/results.json is corrupt: the key 'runs' appears twice in one object " + CORRUPT_HINT,
        ),
        (
            "sources.json", lambda text: '{"/a/models.py": "0a", "/a/models.py": "0b"}',
            "--resume {run_dir}: sources.json is corrupt: the key '/a/models.py' appears twice in one object "
            + SOURCES_HINT,
        ),
    ],
    ids=["results.json", "sources.json"],
)
def test_a_key_given_twice_is_refused_rather_than_read_as_the_last(finished, tmp_path, name, edit, expected):
    run_dir = copy_run(finished, tmp_path)
    (run_dir / name).write_text(edit((run_dir / name).read_text()))
    results_before = (run_dir / "results.json").read_bytes()

    result = invoke("screen", "--resume", str(run_dir), catch_exceptions=True)

    assert result.exit_code == 2, result.output
    assert error_lines(result) == [f"error: {expected.format(run_dir=run_dir)}"]
    assert (run_dir / "results.json").read_bytes() == results_before


@pytest.mark.parametrize("name", ["results.json", "sources.json", "results.csv", ".lock", "checkpoints/*"])
def test_a_fifo_in_place_of_a_file_is_refused_rather_than_read_or_replaced(interrupted, tmp_path, name):
    run_dir = copy_run(interrupted, tmp_path)
    entry = next(run_dir.glob(name))
    entry.unlink()
    os.mkfifo(entry)  # reading it would wait for a writer for ever; a rename would replace it unseen
    results_before = None if name == "results.json" else (run_dir / "results.json").read_bytes()

    result = invoke("screen", "--resume", str(run_dir), catch_exceptions=True)

    assert result.exit_code == 2, result.output
    assert error_lines(result) == [
        f"error: {entry} is not a regular file (a FIFO, a socket or a device): alrao keeps only plain files and "
        "folders in a run directory (remove it, or put the file itself in its place)"
    ]
    assert stat.S_ISFIFO(entry.lstat().st_mode)
    if results_before is not None:
        assert (run_dir / "results.json").read_bytes() == results_before


def test_a_resume_of_a_run_directory_in_use_is_refused_at_once(interrupted, tmp_path):
    run_dir = copy_run(interrupted, tmp_path)

    def saved() -> dict[str, bytes]:
        return {str(file): file.read_bytes() for file in run_dir.rglob("*") if file.is_file() and file.name != ".lock"}

    before = saved()
    with locked(run_dir):  # another command's lock (flock: one per open file, even in one process)
        result = invoke("screen", "--resume", str(run_dir), catch_exceptions=True)
    assert result.exit_code == 2, result.output
    assert error_lines(result) == [
        f"error: {run_dir} is in use by alrao (pid {os.getpid()}) (wait for it to finish, or stop it (Ctrl-C) and run --resume)"
    ]
    assert saved() == before  # the checkpoint and the results untouched


def test_an_unreadable_checkpoint_restarts_its_run_with_a_notice(interrupted, tmp_path):
    run_dir = copy_run(interrupted, tmp_path)
    (checkpoint,) = (run_dir / "checkpoints").iterdir()
    checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])  # as a crash may leave it

    result = invoke("screen", "--resume", str(run_dir), "--quiet")

    assert result.exit_code == 0, result.output
    (notice,) = [line for line in result.output.splitlines() if "ignoring the checkpoint" in line]
    assert notice.startswith("mlp|alrao|seed=1: ignoring the checkpoint") and notice.endswith("; starting afresh")
    assert [(run["key"], run["status"]) for run in load_results(run_dir)["runs"]] == [
        ("mlp|alrao|seed=0", "ok"), ("mlp|alrao|seed=1", "ok"),
    ]


def test_a_model_file_changed_during_a_screen_stops_it_and_resume_refuses_it(tmp_path):
    models = write_files(tmp_path / "models", {"models.py": MODELS}) / "models.py"
    run_dir = tmp_path / "run"
    config = build_config(None, {**QUICK, "archs": ["mlp", f"{models}:Small"], "checkpoint_every": 1, "out": str(run_dir)})

    def edit() -> None:  # while mlp trains, before Small's run: an in-process screen still holds the first version
        models.write_text(MODELS.replace("nn.Linear(input_shape[0], 4)", "nn.Linear(input_shape[0], 5)"))

    with listening(stop_at(1, key_part="mlp|", stop=edit)), pytest.raises(AlraoUserError) as stopped:
        run_study(config, "screen")

    assert stopped.value.message == f"{models} changed after the study imported it: stopped, so that its runs do not mix two versions of it"
    assert [(run["key"], run["status"]) for run in load_results(run_dir)["runs"]] == [("mlp|alrao|seed=0", "ok")]
    refused = invoke("screen", "--resume", str(run_dir))
    assert refused.exit_code == 2, refused.output
    assert error_lines(refused) == [
        f"error: --resume {run_dir}: {models} changed since the run began (put it back as it was, or add --force "
        "to train its architectures again from scratch)"
    ]


def test_a_model_file_at_a_long_path_of_any_characters_checkpoints_and_resumes(tmp_path):
    folder = tmp_path / ("é 'q' $x;\\n" * 12)  # over 300 characters in all, quotes, a backslash, non-ASCII
    models = write_files(folder, {"m" * 200 + " ü.py": MODELS}) / ("m" * 200 + " ü.py")
    run_dir = tmp_path / "run"
    config = build_config(None, {**QUICK, "archs": [f"{models}:Small"], "checkpoint_every": 1, "out": str(run_dir)})
    with listening(stop_at(1)):
        assert run_study(config, "screen").interrupted
    (checkpoint,) = (run_dir / "checkpoints").iterdir()
    assert len(checkpoint.name) < 255 and len(str(models)) > 300

    resumed = invoke("screen", "--resume", str(run_dir), "--quiet")

    assert resumed.exit_code == 0, resumed.output
    (run,) = load_results(run_dir)["runs"]
    assert (run["arch"], run["status"], run["history"][-1]["step"]) == (f"{models}:Small", "ok", 2)


def test_a_tilde_in_out_is_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    config = write_files(tmp_path, {"study.yaml": "archs: [mlp]\nout: ~/runs/first\n"}) / "study.yaml"
    result = invoke("screen", "--config", str(config), "--subset", "64", "--steps", "2", "--no-plots", "--quiet")
    assert result.exit_code == 0, result.output
    assert load_results(tmp_path / "home" / "runs" / "first")["runs"][0]["status"] == "ok"
    assert not (tmp_path / "~").exists()


def test_a_model_file_is_recorded_as_it_was_imported_not_as_it_is_later(tmp_path):
    models = write_files(tmp_path / "models", {"models.py": MODELS}) / "models.py"
    import_user_file(models)
    models.write_text(MODELS + "\n# edited after the import, before the run directory recorded it\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    record_sources(run_dir, [str(models)])
    assert changed_sources(run_dir) == [str(models)]


def test_config_yaml_is_written_atomically(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_config(run_dir, build_config(None, QUICK))
    before = (run_dir / CONFIG_FILE).read_bytes()

    def full_disk(descriptor: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full_disk)
    with pytest.raises(RunDirectoryError, match="No space left on device"):
        write_config(run_dir, build_config(None, {**QUICK, "steps": 30}))
    assert (run_dir / CONFIG_FILE).read_bytes() == before and sorted(p.name for p in run_dir.iterdir()) == [CONFIG_FILE]
    assert read_config(run_dir).steps == 2
