"""Screens that survive: bad input is one line, broken models are isolated, runs resume."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from support import quick_flags, without_seconds, write_files
from typer.testing import CliRunner

from alrao_cli.cli.app import app

runner = CliRunner()
QUICK = quick_flags(128, epochs=1)

MODEL_FILES = {
    "good.py": (
        "from torch import nn\n"
        "def build_model(num_classes, input_shape):\n"
        "    return nn.Sequential(nn.Linear(input_shape[0], 16), nn.ReLU(), nn.Linear(16, num_classes))\n"
    ),
    "broken_syntax.py": "from torch import nn\n\ndef build_model(:\n    pass\n",
    "wrong_shape.py": (
        "from torch import nn\n"
        "def build_model(num_classes, input_shape):\n"
        "    return nn.Sequential(nn.Linear(input_shape[0], 16), nn.ReLU(), nn.Linear(16, num_classes + 3))\n"
    ),
    "no_head.py": (
        "import torch\nfrom torch import nn\n"
        "class NoHead(nn.Module):\n"
        "    def __init__(self, num_classes, input_shape):\n"
        "        super().__init__()\n"
        "        self.conv = nn.Conv1d(1, num_classes, 3, padding=1)\n"
        "    def forward(self, x):\n"
        "        return self.conv(x.unsqueeze(1)).mean(-1)\n"
    ),
    "explodes.py": (
        "from torch import nn\n"
        "class Explodes(nn.Module):\n"
        "    def __init__(self, num_classes, input_shape):\n"
        "        super().__init__()\n"
        "        self.body = nn.Linear(input_shape[0], 16)\n"
        "        self.head = nn.Linear(16, num_classes)\n"
        "    def forward(self, x):\n"
        "        return self.head(self.body(x) * 1e25)\n"
    ),
    "aux_last.py": (
        "import torch\nfrom torch import nn\n"
        "class AuxLast(nn.Module):\n"
        "    def __init__(self, num_classes, input_shape):\n"
        "        super().__init__()\n"
        "        self.body = nn.Linear(input_shape[0], 16)\n"
        "        self.fc = nn.Linear(16, num_classes)\n"
        "        self.aux = nn.Linear(16, num_classes)  # registered last, never the output\n"
        "    def forward(self, x):\n"
        "        return self.fc(torch.relu(self.body(x)))\n"
    ),
    "two.py": (
        "from torch import nn\n"
        "class A(nn.Module):\n    pass\n"
        "class B(nn.Module):\n    pass\n"
    ),
}


@pytest.fixture
def models(tmp_path) -> Path:
    return write_files(tmp_path / "models", MODEL_FILES)


def bad_inputs(models: Path, tmp: Path) -> list[tuple[list[str], str]]:
    bad_yaml = tmp / "bad.yaml"
    bad_yaml.write_text("epochs: 2\narchs: [mlp\n")
    unknown_key = tmp / "unknown.yaml"
    unknown_key.write_text("epoch: 2\n")
    wrong_type = tmp / "wrong.yaml"
    wrong_type.write_text("copies: many\n")
    a_file = tmp / "a-file"
    a_file.write_text("")
    not_a_run = tmp / "empty-dir"
    not_a_run.mkdir()
    cases = [
        (["screen", str(models / "missing.py")], "missing.py"),
        (["screen", str(models / "broken_syntax.py")], "broken_syntax.py, line 3"),
        (["screen", f"{models / 'good.py'}:Nope"], "build_model"),
        (["screen", str(models / "two.py")], "two.py:"),
        (["screen", "nozoo"], "alrao models"),
        (["screen", "torchvision:resnet9000"], "resnet"),
        (["screen", str(models / "wrong_shape.py")], "[batch, 10]"),
        (["screen", f"{models / 'no_head.py'}:NoHead"], "no output layer"),
        (["screen", "mlp", "--data", "cifar10", "--data-dir", str(tmp / "nodata")], "--download"),
        (["screen", "mlp", "--data", "nosuchdata"], "mnist1d"),
        (["screen", "mlp", "--lr-min", "1", "--lr-max", "0.1"], "--lr-min"),
        (["screen", "mlp", "--lr-min", "-1"], "--lr-min"),
        (["screen", "mlp", "--copies", "0"], "--copies"),
        (["screen", "mlp", "--grid", "1e-5:10"], "--grid"),
        (["screen", "--config", str(bad_yaml)], "bad.yaml"),
        (["screen", "--config", str(unknown_key)], "epoch"),
        (["screen", "--config", str(wrong_type)], "copies"),
        (["screen", "--config", str(tmp / "absent.yaml")], "absent.yaml"),
        (["screen", "mlp", "--device", "tpu"], "--device"),
        (["screen", "mlp", "--out", str(a_file / "run")], "output directory"),
        (["screen", "--resume", str(not_a_run)], "not a run directory"),
        (["compare", "--resume", str(tmp / "nowhere")], "no such run directory"),
        (["report", str(not_a_run)], "results.json"),
    ]
    if not torch.cuda.is_available():
        cases.append((["screen", "mlp", "--device", "cuda"], "CUDA is not available"))
    return cases


def test_every_bad_input_is_one_clear_line_and_exit_code_2(models, tmp_path):
    failures = []
    for argv, expected in bad_inputs(models, tmp_path):
        plain = argv[0] == "report" or "--resume" in argv
        result = runner.invoke(app, argv if plain else [*argv, *QUICK])
        lines = result.output.splitlines()  # exactly one line: no blank line from the progress display
        ok = (
            result.exit_code == 2
            and "Traceback" not in result.output
            and len(lines) == 1
            and lines[0].startswith("error:")
            and expected in lines[0]
        )
        if not ok:
            failures.append((argv, result.exit_code, result.output))
    assert not failures, "\n".join(f"{a}: exit {c}\n{o}" for a, c, o in failures)


def test_a_screen_isolates_broken_models(models, tmp_path):
    out = tmp_path / "run"
    archs = [
        str(models / "good.py"), str(models / "broken_syntax.py"),
        f"{models / 'explodes.py'}:Explodes", f"{models / 'no_head.py'}:NoHead",
    ]
    result = runner.invoke(app, ["screen", *archs, "--subset", "256", "--epochs", "2", "--no-plots", "--out", str(out), "--json"])
    assert result.exit_code == 1, result.output
    ranking = json.loads(result.stdout)["ranking"]
    assert ranking[0]["arch"] == archs[0] and ranking[0]["status"] == "ok"
    by_arch = {entry["arch"]: entry for entry in ranking}
    assert by_arch[archs[1]]["status"] == "failed" and "line 3" in by_arch[archs[1]]["reason"]
    assert by_arch[archs[2]]["status"] == "diverged" and "step" in by_arch[archs[2]]["reason"]
    assert by_arch[archs[3]]["status"] == "failed" and "no output layer" in by_arch[archs[3]]["reason"]
    assert [entry["rank"] for entry in ranking] == [1, 2, 3, 4]
    assert "Traceback" not in result.output


def test_the_output_layer_is_the_linear_whose_output_the_model_returns(models, tmp_path):
    # AuxLast registers an unused Linear(16, K) after its real head: the probe batch tells them apart.
    arch = f"{models / 'aux_last.py'}:AuxLast"
    found = runner.invoke(app, ["screen", arch, *QUICK, "--out", str(tmp_path / "a")])
    assert found.exit_code == 0, found.output
    (run,) = json.loads((tmp_path / "a" / "results.json").read_text())["runs"]
    assert run["status"] == "ok" and run["rate_summary"].keys() >= {"body.weight", "aux.weight"}
    assert "fc.weight" not in run["rate_summary"]  # fc became the copies


def test_head_flag_names_the_output_layer(models, tmp_path):
    arch = f"{models / 'aux_last.py'}:AuxLast"
    wrong = runner.invoke(app, ["screen", arch, *QUICK, "--out", str(tmp_path / "a"), "--head", "aux"])
    assert wrong.exit_code == 2 and "'aux' was never called" in wrong.output
    named = runner.invoke(app, ["screen", arch, *QUICK, "--out", str(tmp_path / "b"), "--head", "fc"])
    assert named.exit_code == 0, named.output
    (run,) = json.loads((tmp_path / "b" / "results.json").read_text())["runs"]
    assert run["status"] == "ok" and run["spec"]["method"]["options"]["head"] == "fc"


def test_fail_fast_stops_before_training_when_a_model_is_broken(models, tmp_path):
    out = tmp_path / "run"
    archs = [f"{models / 'no_head.py'}:NoHead", str(models / "good.py")]
    result = runner.invoke(app, ["screen", *archs, *QUICK, "--fail-fast", "--out", str(out), "--quiet"])
    assert result.exit_code == 1
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert [(run["arch"], run["status"]) for run in runs] == [(archs[0], "failed")]


def test_a_diverging_baseline_rate_is_an_outcome_not_a_failure(tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["compare", "mlp", *QUICK, "--grid", "0.01,1e4", "--no-adam", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    status = {run["key"]: run["status"] for run in json.loads((out / "results.json").read_text())["runs"]}
    assert status["mlp|sgd|lr=10000|seed=0"] == "diverged"
    assert status["mlp|alrao|seed=0"] == "ok"


def test_fail_fast_stops_at_the_first_failure(models, tmp_path):
    out = tmp_path / "run"
    archs = [f"{models / 'explodes.py'}:Explodes", str(models / "good.py")]
    result = runner.invoke(app, ["screen", *archs, *QUICK, "--fail-fast", "--out", str(out), "--quiet"])
    assert result.exit_code == 1
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert [run["status"] for run in runs] == ["diverged"]


def test_same_seed_same_results(tmp_path):
    histories = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert runner.invoke(app, ["screen", "mlp", "cnn1d", *QUICK, "--out", str(out), "--quiet"]).exit_code == 0
        runs = json.loads((out / "results.json").read_text())["runs"]
        histories.append([[(r["train_loss"], r["val_loss"], r["val_acc"], r["posterior"]) for r in run["history"]] for run in runs])
    assert histories[0] == histories[1]


def run_dir_state(out: Path) -> tuple[list[str], list[Path]]:
    try:
        runs = [run["key"] for run in json.loads((out / "results.json").read_text())["runs"]]
    except (FileNotFoundError, json.JSONDecodeError):
        runs = []
    return runs, sorted((out / "checkpoints").glob("*.pt")) if (out / "checkpoints").is_dir() else []


SLOW_DROPOUT_MODEL = (
    "import time\n"
    "from torch import nn\n"
    "class SlowDropout(nn.Module):\n"
    "    def __init__(self, num_classes, input_shape):\n"
    "        super().__init__()\n"
    "        self.net = nn.Sequential(nn.Linear(input_shape[0], 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, num_classes))\n"
    "    def forward(self, x):\n"
    "        if self.training:\n"
    "            time.sleep(0.02)  # slow enough to be caught in flight; the numbers do not change\n"
    "        return self.net(x)\n"
)


def slow_dropout_model(folder: Path) -> str:
    """A model whose runs take about a second, with dropout: a resume must restore torch's generator."""
    path = folder / "slow_dropout.py"
    path.write_text(SLOW_DROPOUT_MODEL)
    return str(path)


def screen_command(out: Path, second: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "alrao_cli", "screen", "mlp", second, "--subset", "512",
            "--epochs", "3", "--checkpoint-every", "5", "--no-plots", "--out", str(out), *extra]


def start_screen(out: Path, second: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(screen_command(out, second, *extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until_second_run_checkpointed(process: subprocess.Popen, out: Path, after_step: int = 0) -> list[str]:
    """Wait for the second run's checkpoint (one saved after ``after_step``, if given).

    The first run's checkpoint outlives it a moment (it is deleted once its result is
    saved): only a checkpoint of the second run counts.
    """
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        runs, checkpoints = run_dir_state(out)
        second = [path for path in checkpoints if not path.name.startswith("mlp")]
        if runs and second and (after_step == 0 or checkpoint_step(second[0]) > after_step):
            return runs
        if process.poll() is not None:
            raise AssertionError(f"the screen ended before it could be interrupted: {process.stderr.read()}")
        time.sleep(0.01)
    raise AssertionError("no checkpoint of the second run appeared")


def checkpoint_step(path: Path) -> int:
    try:
        return torch.load(path, weights_only=True)["step"]
    except (FileNotFoundError, RuntimeError, EOFError):
        return 0  # replaced while being read: look again


@pytest.mark.slow
def test_kill_9_then_resume_equals_an_uninterrupted_run(tmp_path):
    model = slow_dropout_model(tmp_path)
    reference = tmp_path / "reference"
    done = subprocess.run(screen_command(reference, str(model)), capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr

    out = tmp_path / "killed"
    process = start_screen(out, str(model), "--quiet")
    finished_before = wait_until_second_run_checkpointed(process, out, after_step=15)  # past its first epoch
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    assert finished_before == ["mlp|alrao|seed=0"]
    before = json.loads((out / "results.json").read_text())["runs"][0]
    (checkpoint,) = [path for path in run_dir_state(out)[1] if not path.name.startswith("mlp")]
    in_flight = torch.load(checkpoint, weights_only=True)
    assert in_flight["key"] == f"{model}|alrao|seed=0" and in_flight["step"] > 15 and in_flight["history"]

    resumed = subprocess.run(
        [sys.executable, "-m", "alrao_cli", "screen", "--resume", str(out), "--quiet", "--debug"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from its checkpoint at step {in_flight['step']}" in resumed.stderr
    after = {run["key"]: run for run in json.loads((out / "results.json").read_text())["runs"]}
    expected = {run["key"]: run for run in json.loads((reference / "results.json").read_text())["runs"]}
    assert json.dumps(after["mlp|alrao|seed=0"]) == json.dumps(before)  # not retrained: unchanged
    assert {key: without_seconds(run) for key, run in after.items()} == {
        key: without_seconds(run) for key, run in expected.items()
    }
    # The epochs done before the kill were not trained again: their timings are the checkpoint's.
    first_epochs = after[f"{model}|alrao|seed=0"]["history"][: len(in_flight["history"])]
    assert [r["seconds"] for r in first_epochs] == [r["seconds"] for r in in_flight["history"]]
    assert not (out / "checkpoints").exists()


@pytest.mark.slow
def test_ctrl_c_prints_the_partial_table_and_the_resume_command(tmp_path):
    out = tmp_path / "run"
    process = start_screen(out, slow_dropout_model(tmp_path))
    wait_until_second_run_checkpointed(process, out)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "mlp" in stdout  # the partial ranking
    assert f"alrao screen --resume {out}" in stderr
    assert "Traceback" not in stderr
    assert json.loads((out / "results.json").read_text())["interrupted"] is True


SLOW_DATA_FACTORY = """
import time
from pathlib import Path

import torch
from torch.utils.data import TensorDataset


def make(**settings):
    Path({started!r}).touch()
    time.sleep(60)  # Ctrl-C arrives here, while the study starts
    x, y = torch.randn(16, 8), torch.randint(0, 2, (16,))
    return TensorDataset(x, y), TensorDataset(x, y)
"""


@pytest.mark.parametrize(
    ("command", "said"),
    [
        (["screen", "--steps", "1", "--no-plots", "--device", "cpu"],
         "interrupted while the screen was starting: nothing trained, nothing saved"),
        (["check"], "interrupted: the check stopped before it finished; no report was written"),
    ],
    ids=["screen", "check"],
)
def test_ctrl_c_while_a_command_starts_is_one_line_and_leaves_nothing_behind(tmp_path, command, said):
    started = tmp_path / "started"
    factory = tmp_path / "slow_data.py"
    factory.write_text(SLOW_DATA_FACTORY.format(started=str(started)))
    out = tmp_path / "run" if command[0] == "screen" else tmp_path / "check.xml"  # what the command would write
    command = [sys.executable, "-m", "alrao_cli", *command, "mlp", "--data", f"python:{factory}:make",
               "--out" if command[0] == "screen" else "--junit-xml", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not started.exists():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1]
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert said in stderr and "Traceback" not in stderr, stderr
    assert not out.exists()  # nothing had been saved: nothing is left behind
