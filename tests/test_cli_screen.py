"""`alrao screen` end to end, in-process through Typer's runner and once as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from alrao_cli.cli import app

runner = CliRunner()
QUICK = ["--subset", "256", "--epochs", "2", "--no-plots"]


def invoke(*argv: str):
    return runner.invoke(app, list(argv), catch_exceptions=False)


def load_results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def test_screen_ranks_two_zoo_models_and_saves_everything(tmp_path):
    out = tmp_path / "run"
    result = invoke("screen", "mlp", "cnn1d", *QUICK, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "mlp" in result.output and "cnn1d" in result.output
    saved = load_results(out)
    assert saved["kind"] == "screen"
    assert {run["arch"] for run in saved["runs"]} == {"mlp", "cnn1d"}
    for run in saved["runs"]:
        assert run["status"] == "ok"
        assert len(run["history"]) == 2
        assert all(record["val_loss"] is not None for record in run["history"])
        assert all(0 <= record["train_acc"] <= 1 for record in run["history"])
        assert len(run["history"][-1]["posterior"]) == 10
    assert (out / "results.csv").read_text().count("\n") >= 3
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["epochs"] == 2 and config["archs"] == ["mlp", "cnn1d"]


def test_json_output_is_only_json_with_the_documented_schema(tmp_path):
    result = runner.invoke(app, ["screen", "mlp", *QUICK, "--out", str(tmp_path / "r"), "--json"])
    assert result.exit_code == 0
    payload = json.loads(result.stdout)
    assert set(payload) == {"run_dir", "ranking"}
    (entry,) = payload["ranking"]
    assert set(entry) == {"rank", "arch", "status", "val_loss", "val_acc", "epoch", "lr_selected", "params", "seconds", "reason"}
    assert entry["rank"] == 1 and entry["arch"] == "mlp" and entry["status"] == "ok"
    assert entry["val_loss"] > 0 and 0 <= entry["val_acc"] <= 1 and entry["epoch"] in (1, 2)
    assert 1e-5 <= entry["lr_selected"] <= 10


def test_flags_override_the_config_file(tmp_path):
    config = tmp_path / "screen.yaml"
    config.write_text("archs: [mlp]\nepochs: 1\nsubset: 128\nbatch-size: 16\nplots: false\n")
    out = tmp_path / "run"
    result = invoke(
        "screen", "--config", str(config), "--epochs", "2", "--val-fraction", "0.25", "--out", str(out), "--quiet"
    )
    assert result.exit_code == 0, result.output
    (run,) = load_results(out)["runs"]
    assert len(run["history"]) == 2  # the flag won
    assert run["spec"]["data"]["val_fraction"] == 0.25
    assert run["spec"]["batch_size"] == 16  # the file's value stayed


def test_steps_budget_and_a_user_model_file(tmp_path):
    model_file = tmp_path / "my_models.py"
    model_file.write_text(
        "from torch import nn\n"
        "class Tiny(nn.Module):\n"
        "    def __init__(self, num_classes, input_shape):\n"
        "        super().__init__()\n"
        "        self.body = nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], 16), nn.ReLU())\n"
        "        self.head = nn.Linear(16, num_classes)\n"
        "    def forward(self, x):\n"
        "        return self.head(self.body(x))\n"
    )
    out = tmp_path / "run"
    result = invoke("screen", f"{model_file}:Tiny", "--subset", "256", "--steps", "5", "--out", str(out), "--no-plots")
    assert result.exit_code == 0, result.output
    (run,) = load_results(out)["runs"]
    assert run["history"][-1]["step"] == 5


def test_report_redraws_the_same_table(tmp_path):
    out = tmp_path / "run"
    first = invoke("screen", "mlp", "cnn1d", *QUICK, "--out", str(out), "--quiet")
    again = invoke("report", str(out))
    assert again.exit_code == 0
    assert again.stdout.strip() == first.stdout.strip()


def test_models_lists_the_zoo_and_init_writes_a_loadable_config(tmp_path):
    listing = invoke("models", "--json")
    names = {row["name"] for row in json.loads(listing.stdout)}
    assert {"mlp", "cnn1d", "lstm", "gru"} <= names
    path = tmp_path / "alrao.yaml"
    assert invoke("init", str(path)).exit_code == 0
    assert "lr_min" in path.read_text() or "lr-min" in path.read_text()
    assert invoke("init", str(path)).exit_code == 2  # refuses to overwrite


@pytest.mark.slow
def test_real_subprocess_screen(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "alrao_cli", "screen", "mlp", "cnn1d", *QUICK, "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert done.returncode == 0, done.stderr
    assert "mlp" in done.stdout and "cnn1d" in done.stdout
    runs = load_results(out)["runs"]
    assert {run["arch"] for run in runs} == {"mlp", "cnn1d"}
    assert all(run["history"][-1]["val_loss"] < 10 for run in runs)


def test_screen_on_an_image_folder_made_here(tmp_path):
    from PIL import Image

    generator = torch.Generator().manual_seed(0)
    root = tmp_path / "images"
    for label, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
        folder = root / f"class{label}"
        folder.mkdir(parents=True)
        for index in range(8):
            noise = (torch.rand(12, 12, 3, generator=generator) * 60).to(torch.uint8).numpy()
            pixels = (noise + torch.tensor(colour, dtype=torch.uint8).numpy() // 2).astype("uint8")
            Image.fromarray(pixels).save(folder / f"{index}.png")
    out = tmp_path / "run"
    result = invoke("screen", "vgg_small", "--data", f"imagefolder:{root}", "--epochs", "1", "--batch-size", "8", "--no-plots", "--out", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    (run,) = load_results(out)["runs"]
    assert run["status"] == "ok" and run["history"][0]["val_acc"] is not None
