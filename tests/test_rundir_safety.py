"""The run directory is checked, never trusted: a link where alrao reads or writes is refused
and left as it was, a full disk stops the study without failing the run it cut off (and
``--resume`` continues it), and a results.json or sources.json edited into something
Python's json would choke on or silently misread is one line, not a traceback."""

from __future__ import annotations

import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from support import invoke, load_results, quick_settings, stop_at, write_files

from alrao_cli.config.schema import build_config
from alrao_cli.data.load import cached_data
from alrao_cli.results.records import run_key
from alrao_cli.study.checkpoint import checkpoint_path
from alrao_cli.study.driver import listening, run_study
from alrao_cli.study.plan import data_spec_of

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


def test_a_full_disk_stops_the_study_without_failing_the_run_and_resume_completes_it(tmp_path):
    models = write_files(tmp_path / "models", {"models.py": MODELS}) / "models.py"
    cached_data(data_spec_of(build_config(None, QUICK)))  # the dataset's cache is written before the limit
    run_dir = tmp_path / "run"
    command = [
        sys.executable, "-m", "alrao_cli", "screen", f"{models}:Small", f"{models}:Big", "--subset", "64",
        "--steps", "2", "--batch-size", "16", "--no-plots", "--device", "cpu", "--quiet", "--out", str(run_dir),
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
