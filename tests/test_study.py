"""The study engine: run folders, fail-fast, resume, signals, executors, and what the CLI prints."""

from __future__ import annotations

import json
import os
import pickle
import shlex
import signal
import sys
import traceback
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from alrao_cli.cli import app as cli
from alrao_cli.study import driver as study
from alrao_cli.cli.app import app
from alrao_cli.config.schema import build_config
from alrao_cli.errors import AlraoUserError
from alrao_cli.study.spec import RunStarted
from alrao_cli.study.executor import SequentialExecutor
from alrao_cli.study.attempt import execute_run
from alrao_cli.study.checkpoint import checkpoint_path
from alrao_cli.study.driver import listening, run_study
from support import main_in_a_fresh_process, quick_flags, quick_settings, stop_at, without_seconds, write_files

runner = CliRunner()
QUICK = quick_flags(96, epochs=2, batch_size=8)
QUICK_CONFIG = quick_settings(96, epochs=2, batch_size=8, device="cpu")

MODELS = {
    "good.py": (
        "from torch import nn\n"
        "def build_model(num_classes, input_shape):\n"
        "    return nn.Sequential(nn.Linear(input_shape[0], 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, num_classes))\n"
    ),
    "bad_forward.py": (
        "from torch import nn\n"
        "class BadForward(nn.Module):\n"
        "    def __init__(self, num_classes, input_shape):\n"
        "        super().__init__()\n"
        "        self.net = nn.Linear(30, num_classes)\n"
        "    def forward(self, x):\n"
        "        return self.net(x)  # 30 inputs, the data has 40\n"
    ),
    "no_head.py": (
        "from torch import nn\n"
        "class NoHead(nn.Module):\n"
        "    def __init__(self, num_classes, input_shape):\n"
        "        super().__init__()\n"
        "        self.conv = nn.Conv1d(1, num_classes, 3, padding=1)\n"
        "    def forward(self, x):\n"
        "        return self.conv(x.unsqueeze(1)).mean(-1)\n"
    ),
    "chatty.py": (
        "from torch import nn\n"
        "print('hello from a model file')\n"
        "def build_model(num_classes, input_shape):\n"
        "    return nn.Sequential(nn.Linear(input_shape[0], num_classes))\n"
    ),
    "crashes.py": (
        "from torch import nn\n"
        "class Crashes(nn.Module):\n"
        "    def __init__(self, num_classes, input_shape):\n"
        "        super().__init__()\n"
        "        self.net = nn.Linear(input_shape[0], num_classes)\n"
        "        self.calls = 0\n"
        "    def forward(self, x):\n"
        "        if self.training:\n"
        "            self.calls += 1\n"
        "            if self.calls == 16:\n"
        "                raise RuntimeError('boom')\n"
        "        return self.net(x)\n"
    ),
}


@pytest.fixture
def models(tmp_path) -> Path:
    return write_files(tmp_path / "models", MODELS)


def saved_runs(run_dir: Path) -> dict[str, dict]:
    runs = json.loads((run_dir / "results.json").read_text())["runs"]
    return {run["key"]: run for run in runs}


def error_lines(result) -> list[str]:
    return result.output.splitlines()


# -- the run folder ---------------------------------------------------------------------------
def test_out_refuses_a_folder_that_already_holds_a_run(tmp_path):
    out = tmp_path / "run"
    assert runner.invoke(app, ["screen", "mlp", *QUICK, "--out", str(out), "--quiet"]).exit_code == 0
    before = (out / "results.json").read_bytes()
    again = runner.invoke(app, ["screen", "mlp", *QUICK, "--lr-max", "1", "--out", str(out)])
    assert again.exit_code == 2
    assert error_lines(again) == [f"error: --out {out} is already a run (use --resume {out} to continue it, or another --out)"]
    assert (out / "results.json").read_bytes() == before


def test_an_unwritable_out_is_one_line_even_when_a_model_is_broken(models, tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    result = runner.invoke(app, ["screen", str(models / "bad_forward.py"), *QUICK, "--out", str(a_file / "run")])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    (line,) = error_lines(result)
    assert line.startswith("error: cannot write the output directory")


def test_a_usage_error_leaves_no_empty_run_folder(models, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["screen", f"{models / 'no_head.py'}:NoHead", *QUICK, "--out", str(out)])
    assert result.exit_code == 2 and not out.exists()


def test_the_saved_config_keeps_paths_as_written_and_where_they_are_read_from(models, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = build_config(None, {**QUICK_CONFIG, "archs": ["models/good.py"], "data_dir": "data", "out": "run"})
    outcome = run_study(config, "screen")
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["archs"] == ["models/good.py"] and saved["data_dir"] == "data"
    assert saved["workdir"] == str(tmp_path)
    (run,) = outcome.study.runs
    assert run.arch == "models/good.py" and run.key.startswith("models/good.py|")  # tables show what was typed
    assert run.spec["arch"] == f"{models / 'good.py'}:build_model" and run.spec["data"]["data_dir"] == str(tmp_path / "data")


def test_resume_from_another_folder_continues_the_run_in_flight(models, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    options = {**QUICK_CONFIG, "archs": ["mlp", "models/good.py"], "checkpoint_every": 5}
    config = build_config(None, {**options, "out": "run"})
    reference = run_study(build_config(None, {**options, "out": "ref"}), "screen")
    with listening(stop_at(step=15, key_part="good.py")):
        assert run_study(config, "screen").interrupted
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    resumed = run_study(config, "screen", resume=tmp_path / "run")
    assert resumed.exit_code == 0
    expected = {run.key: without_seconds(run.to_dict()) for run in reference.study.runs}
    assert {run.key: without_seconds(run.to_dict()) for run in resumed.study.runs} == expected


def test_resume_stops_with_a_usage_error_when_the_model_in_flight_no_longer_builds(models, tmp_path, monkeypatch):
    config = build_config(None, {**QUICK_CONFIG, "archs": ["mlp", str(models / "good.py")], "out": str(tmp_path / "run")})
    with listening(stop_at(step=12, key_part="good.py")):
        run_study(config, "screen")
    (models / "good.py").rename(models / "moved.py")
    with pytest.raises(AlraoUserError, match="--resume: .*good.py no longer builds: model file not found"):
        run_study(config, "screen", resume=tmp_path / "run")
    assert list(saved_runs(tmp_path / "run")) == ["mlp|alrao|seed=0"]  # not recorded as failed
    assert list((tmp_path / "run" / "checkpoints").glob("*.pt"))
    (models / "moved.py").rename(models / "good.py")
    assert run_study(config, "screen", resume=tmp_path / "run").exit_code == 0  # fixed: it resumes


def test_a_checkpoint_outlives_its_run_until_the_result_is_saved(tmp_path, monkeypatch):
    out = tmp_path / "run"
    seen = []
    original = study.save_study

    def save(run_dir, result):
        for run in result.runs:
            seen.append((run.key, checkpoint_path(run_dir, run.key).exists()))
        original(run_dir, result)

    monkeypatch.setattr(study, "save_study", save)
    run_study(build_config(None, {**QUICK_CONFIG, "archs": ["mlp"], "out": str(out)}), "screen")
    assert seen[0] == ("mlp|alrao|seed=0", True)  # the first save holding the result
    assert not (out / "checkpoints").exists()


def test_a_failed_run_keeps_its_history_and_leaves_no_checkpoint(models, tmp_path):
    out = tmp_path / "run"
    archs = [f"{models / 'crashes.py'}:Crashes", "mlp"]
    outcome = run_study(build_config(None, {**QUICK_CONFIG, "archs": archs, "out": str(out)}), "screen")
    crashed = saved_runs(out)[f"{archs[0]}|alrao|seed=0"]
    assert crashed["status"] == "failed" and len(crashed["history"]) == 1 and crashed["seconds"] > 0
    assert f"(traceback: {out / 'errors'}" in crashed["reason"]
    assert not (out / "checkpoints").exists() and outcome.exit_code == 1


# -- fail-fast and exit codes -----------------------------------------------------------------
def test_fail_fast_passes_a_diverged_baseline_and_runs_the_whole_study(tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["compare", "mlp", *QUICK, "--grid", "1e4,0.01", "--no-adam", "--fail-fast", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    statuses = [run["status"] for run in saved_runs(out).values()]
    assert statuses == ["ok", "diverged", "ok"]


def test_a_fail_fast_stop_exits_1():
    outcome = study.StudyOutcome(Path("x"), study.StudyResult("screen", {}, (), "now"), stopped_early=True)
    assert outcome.exit_code == 1


def test_sgd_rows_of_an_architecture_alrao_cannot_wrap_still_run(models, tmp_path):
    out = tmp_path / "run"
    arch = f"{models / 'no_head.py'}:NoHead"
    result = runner.invoke(app, ["compare", arch, "mlp", *QUICK, "--grid", "0.1", "--no-adam", "--out", str(out), "--quiet"])
    assert result.exit_code == 1
    runs = saved_runs(out)
    assert runs[f"{arch}|alrao|seed=0"]["status"] == "failed"
    assert "no output layer" in runs[f"{arch}|alrao|seed=0"]["reason"]
    assert runs[f"{arch}|sgd|lr=0.1|seed=0"]["status"] == "ok"


# -- interruption -----------------------------------------------------------------------------
def test_ctrl_c_prints_a_resume_command_the_shell_can_run(tmp_path, monkeypatch):
    out = tmp_path / "my run"
    with listening(stop_at(step=12)):
        result = runner.invoke(app, ["screen", "mlp", *QUICK, "--out", str(out), "--quiet"])
    assert result.exit_code == 130
    assert f"alrao screen --resume {shlex.quote(str(out))}" in result.output


def test_sigterm_stops_like_ctrl_c_with_exit_code_143(tmp_path, monkeypatch):
    out = tmp_path / "run"
    with listening(stop_at(step=12, stop=lambda: os.kill(os.getpid(), signal.SIGTERM))):
        result = runner.invoke(app, ["screen", "mlp", "cnn1d", *QUICK, "--out", str(out), "--quiet"])
    assert result.exit_code == 143, result.output
    assert "terminated (SIGTERM)" in result.output and f"--resume {out}" in result.output
    assert json.loads((out / "results.json").read_text())["interrupted"] is True
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the study's handler is gone


def test_compare_resume_after_an_interruption_equals_an_uninterrupted_compare(tmp_path, monkeypatch):
    argv = ["compare", "mlp", *QUICK, "--grid", "0.1,1", "--no-adam", "--quiet"]
    reference, out = tmp_path / "reference", tmp_path / "run"
    assert runner.invoke(app, [*argv, "--out", str(reference)]).exit_code == 0
    with listening(stop_at(step=12, key_part="lr=0.1|")):  # the second run, after its first epoch
        assert runner.invoke(app, [*argv, "--out", str(out)]).exit_code == 130
    assert list(saved_runs(out)) == ["mlp|alrao|seed=0"]
    resumed = runner.invoke(app, ["compare", "--resume", str(out), "--quiet"])
    assert resumed.exit_code == 0, resumed.output
    expected = {key: without_seconds(run) for key, run in saved_runs(reference).items()}
    assert {key: without_seconds(run) for key, run in saved_runs(out).items()} == expected


# -- what the command line prints -------------------------------------------------------------
def test_json_stdout_is_only_json_even_when_a_model_file_prints(models, tmp_path):
    result = runner.invoke(app, ["screen", str(models / "chatty.py"), *QUICK, "--out", str(tmp_path / "run"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["ranking"][0]["status"] == "ok"
    assert "hello" not in result.stdout and "hello from a model file" in result.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["screen", "--epoch", "2"], "error: No such option: --epoch"),
        (["screen", "--copies", "abc"], "error: Invalid value for '--copies'"),
        (["compare", "--bogus"], "error: No such option: --bogus"),
    ],
)
def test_a_mistyped_flag_or_value_is_one_line(argv, message, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["alrao", *argv])
    with pytest.raises(SystemExit) as caught:
        cli.main()
    captured = capsys.readouterr()
    assert caught.value.code == 2 and captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith(message) and line.endswith(f"(see alrao {argv[0]} --help)")


def test_help_still_works_through_main(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["alrao", "screen", "--help"])
    with pytest.raises(SystemExit) as caught:
        cli.main()
    assert caught.value.code == 0 and "--epochs" in capsys.readouterr().out


def test_help_answers_without_importing_torch():
    # torch takes seconds to import; --help, and the package itself, must not wait for it
    lines = main_in_a_fresh_process(["screen", "--help"], then="alrao_cli.AlraoModel\nprint('torch' in sys.modules)")
    assert lines[-2:] == ["exit 0 False", "True"]


def test_debug_shows_the_model_files_own_frame(models, tmp_path):
    broken = models / "bad_forward.py"
    result = runner.invoke(app, ["screen", str(broken), *QUICK, "--out", str(tmp_path / "run"), "--debug"])
    assert isinstance(result.exception, AlraoUserError) and "forward failed" in str(result.exception)
    frames = traceback.extract_tb(result.exception.__cause__.__traceback__)
    assert (str(broken), "forward") in [(frame.filename, frame.name) for frame in frames]


# -- executors --------------------------------------------------------------------------------
class ReversedExecutor:
    """A toy executor: runs the specs last first, as workers finishing out of order would."""

    def run(self, specs, run_dir, on_event):
        for spec in reversed(list(specs)):
            on_event(RunStarted(spec.key))
            yield execute_run(spec, run_dir, on_event)


def test_what_crosses_the_executor_boundary_pickles(tmp_path):
    from alrao_cli.study.plan import plan_study

    (spec,) = plan_study(build_config(None, {**QUICK_CONFIG, "archs": ["mlp"]}), "screen").runs
    for value in (spec, tmp_path, execute_run, RunStarted(spec.key)):
        assert pickle.loads(pickle.dumps(value)) == value


def test_an_executor_finishing_runs_out_of_order_gives_the_sequential_results(tmp_path):
    def results(name, executor):
        config = build_config(None, {**QUICK_CONFIG, "archs": ["mlp", "cnn1d"], "out": str(tmp_path / name)})
        outcome = run_study(config, "screen", executor=executor)
        return [run.key for run in outcome.study.runs], {run.key: without_seconds(run.to_dict()) for run in outcome.study.runs}

    order, sequential = results("sequential", SequentialExecutor())
    reversed_order, out_of_order = results("reversed", ReversedExecutor())
    assert reversed_order == order[::-1] and out_of_order == sequential


def test_the_run_bar_says_which_run_of_how_many(tmp_path):
    import io

    from rich.console import Console

    from alrao_cli.study.plan import plan_study
    from alrao_cli.report.live import RichObserver

    plan = plan_study(build_config(None, {**QUICK_CONFIG, "archs": ["mlp", "cnn1d"]}), "screen")
    with RichObserver(Console(file=io.StringIO())) as observer:
        observer.study_started(plan, done=0, resumed=False)
        observer.run_started(plan.runs[1], 2, 2)
        (run_task,) = [task for task in observer.progress.tasks if task.id == observer.run_tasks[plan.runs[1].key]]
    assert "[2/2] cnn1d alrao seed=0" in run_task.description
