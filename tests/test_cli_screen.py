"""`alrao screen` end to end, in-process through Typer's runner and once as a real subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import fields

import pytest
import torch
import yaml
from typer.testing import CliRunner

from alrao_cli.cli.app import app
from alrao_cli.config.schema import StudyConfig, build_config
from alrao_cli.config.yaml_io import load_config_file
from support import invoke, load_results, quick_flags, two_colour_images

runner = CliRunner()
QUICK = quick_flags(256, epochs=2)


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
    assert set(payload) == {"run_dir", "interrupted", "ranking", "separability"}
    assert payload["interrupted"] is False
    assert payload["separability"] == {"seeds": 1, "measured": False, "hint": "--seeds 2", "pairs": []}
    (entry,) = payload["ranking"]
    assert set(entry) == {
        "rank", "arch", "status", "val_loss", "val_acc", "epoch", "lr_selected", "params", "seconds", "reason",
        "method", "lr", "val_loss_seeds",
    }
    assert entry["val_loss_seeds"] == {"0": entry["val_loss"]}
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


LAZY_MODEL = """
from torch import nn

class LazyNet(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.LazyLinear(16), nn.ReLU())
        self.head = nn.LazyLinear(num_classes)

    def forward(self, x):
        return self.head(self.body(x))
"""


def test_a_model_with_lazy_layers_is_sized_by_the_data_and_screened(tmp_path):
    model_file = tmp_path / "lazy.py"
    model_file.write_text(LAZY_MODEL)
    out = tmp_path / "run"
    result = invoke("screen", str(model_file), "--subset", "64", "--steps", "3", "--no-plots", "--device", "cpu", "--out", str(out))
    assert result.exit_code == 0, result.output
    (run,) = load_results(out)["runs"]
    assert run["status"] == "ok" and run["params"] == (40 * 16 + 16) + (16 * 10 + 10)  # MNIST-1D: [40], 10 classes


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
    values = load_config_file(path)
    assert set(values) == {option.name for option in fields(StudyConfig)}  # every option, each a valid key
    assert build_config(values, {}) == StudyConfig()
    assert invoke("init", str(path)).exit_code == 2  # refuses to overwrite
    out = tmp_path / "run"
    tiny = ["mlp", "--subset", "64", "--steps", "2", "--no-plots", "--device", "cpu", "--out", str(out), "--quiet"]
    result = invoke("screen", "--config", str(path), *tiny)
    assert result.exit_code == 0, result.output
    (run,) = load_results(out)["runs"]
    assert run["status"] == "ok" and run["history"][-1]["step"] == 2


BAD_MODELS_PATTERNS = [
    (["zzz"], "no zoo model matches 'zzz'", "lists the zoo: cnn1d, gru"),
    (["cnn"], "no zoo model matches 'cnn'", "did you mean 'cnn1d'"),
    (["--json", "lstn*"], "no zoo model matches 'lstn*'", "did you mean 'lstm'"),
    (["--torchvision", "resnet"], "no torchvision classification model matches 'resnet'", "did you mean 'resnet18'"),
]


@pytest.mark.parametrize(("argv", "message", "hint"), BAD_MODELS_PATTERNS, ids=[" ".join(c[0]) for c in BAD_MODELS_PATTERNS])
def test_models_with_a_pattern_matching_nothing_is_a_one_line_usage_error(argv, message, hint):
    result = runner.invoke(app, ["models", *argv])
    assert result.exit_code == 2 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {message}") and hint in line and "Traceback" not in result.output


def test_models_with_a_pattern_lists_only_the_matches():
    rows = json.loads(invoke("models", "--json", "*NET_small").stdout)
    assert [row["name"] for row in rows] == ["mobilenet_small", "resnet_small"]
    assert [row["fits"] for row in rows] == ["1-D [L], image [C,H,W]"] * 2
    names = invoke("models", "--torchvision", "resnet1*").stdout.split()
    assert names == ["torchvision:resnet18", "torchvision:resnet101", "torchvision:resnet152"]


@pytest.mark.parametrize(
    ("config_text", "message"),
    [
        ("archs: [mlp]\nmodel_kwargs: {mpl: {width: 16}}\n",
         "error: config key 'model_kwargs.mpl' names no architecture of this study (did you mean 'mlp'?"),
        ("model_kwargs: {mlp: {bogus: 1}}\n",
         "error: config key 'model_kwargs.mlp': mlp does not take the model argument(s) bogus (it takes: width, depth)"),
        ("heads: {cnn1: head}\n", "error: config key 'heads.cnn1' names no architecture of this study (did you mean 'cnn1d'?"),
    ],
    ids=["kwargs-typo", "bad-argument", "heads-typo"],
)
def test_config_keys_for_no_architecture_are_usage_errors(tmp_path, config_text, message):
    config = tmp_path / "screen.yaml"
    config.write_text(config_text)
    out = tmp_path / "run"
    result = runner.invoke(app, ["screen", "--config", str(config), *QUICK, "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(message) and "Traceback" not in result.output
    assert not out.exists()  # refused before anything trained


def test_the_whole_zoo_on_images_leaves_out_the_1d_cnn_and_succeeds(tmp_path):
    root = two_colour_images(tmp_path / "images", per_class=6, size=10)
    out = tmp_path / "run"
    argv = ["screen", "--data", f"imagefolder:{root}", "--steps", "1", "--batch-size", "4", "--no-plots"]
    result = invoke(*argv, "--device", "cpu", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "note: skipped cnn1d (fits 1-D [L]): the data's examples are shaped [3, 32, 32]" in result.output
    archs = {run["arch"] for run in load_results(out)["runs"]}
    assert archs == {"gru", "lstm", "mlp", "mobilenet_small", "resnet_small", "vgg_small"}


@pytest.mark.slow
def test_real_subprocess_screen(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "alrao_cli", "screen", "mlp", "cnn1d", *QUICK, "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Ranked by best validation loss")
    header = next(line for line in lines if line.startswith("┃"))
    assert re.fullmatch(r"┃ # ┃ architecture ┃\s*params ┃ val loss ┃\s*acc ┃ epoch ┃\s*lr ┃\s*time ┃\s*curve\s*┃", header)
    assert lines.index(header) - 1 == next(i for i, line in enumerate(lines) if line.startswith("┏"))
    rows = [line for line in lines if line.startswith("│")]
    assert [re.match(r"│ (\d) │ (\w+)", row).groups() for row in rows] in (
        [("1", "mlp"), ("2", "cnn1d")], [("1", "cnn1d"), ("2", "mlp")],
    )
    bottom = next(i for i, line in enumerate(lines) if line.startswith("└"))
    assert lines[bottom].endswith("┘") and "noise is unmeasured" in " ".join(lines[bottom + 1:])
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


@pytest.mark.parametrize(
    "flags, noted",
    [([], True), (["--baseline", "adam"], True), (["--baseline", "sgd-grid"], False), (["--method", "sgd"], False)],
    ids=["alone", "adam", "sgd-grid", "screened-sgd"],
)
def test_a_grid_no_method_runs_over_is_noted(flags, noted, tmp_path):
    result = invoke("screen", "mlp", *QUICK, "--grid", "0.1", *flags, "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    assert ("note: --grid only sets the rates of methods tuned over it" in " ".join(result.output.split())) == noted


@pytest.mark.parametrize("budget, noted", [(["--steps", "2"], True), (["--time-budget", "0.5"], False)], ids=["steps", "time"])
def test_a_time_grace_without_a_time_budget_is_noted(budget, noted, tmp_path):
    flags = ["--subset", "64", "--no-plots", "--device", "cpu", *budget, "--time-grace", "5"]
    result = invoke("screen", "mlp", *flags, "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    assert ("note: --time-grace only applies with --time-budget" in " ".join(result.output.split())) == noted


def test_with_two_seeds_neighbouring_rows_within_noise_are_marked_and_said(tmp_path):
    """Two seeds of one model file listed twice under two names: the same losses seed by
    seed, so the paired difference is zero and the rows are not separable."""
    twin = tmp_path / "twins.py"
    twin.write_text(
        "from torch import nn\n"
        "def first(num_classes, input_shape):\n"
        "    return nn.Sequential(nn.Linear(input_shape[0], 16), nn.ReLU(), nn.Linear(16, num_classes))\n"
        "def second(num_classes, input_shape):\n"
        "    return first(num_classes, input_shape)\n"
    )
    out = tmp_path / "run"
    result = invoke("screen", f"{twin}:first", f"{twin}:second", "--seeds", "2", "--subset", "128", "--steps", "4",
                    "--no-plots", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "not separable at this budget" in result.output and "2≈" in result.output
    payload = json.loads(invoke("report", str(out), "--format", "json").stdout)
    (pair,) = payload["separability"]["pairs"]
    assert pair["tested"] and not pair["separable"] and pair["mean_difference"] == 0.0
    assert [sorted(entry["val_loss_seeds"]) for entry in payload["ranking"]] == [["0", "1"], ["0", "1"]]


WRONG_INPUT_SIZE = """
from torch import nn


class WrongInputSize(nn.Module):
    def __init__(self, num_classes, input_shape):
        super().__init__()
        self.head = nn.Linear(3, num_classes)

    def forward(self, x):
        return self.head(x)
"""


def test_a_broken_architecture_is_said_before_the_others_train_not_only_in_the_final_table(tmp_path):
    broken = tmp_path / "wrong_input.py"
    broken.write_text(WRONG_INPUT_SIZE)
    missing = tmp_path / "nothere.py"
    result = invoke("screen", str(missing), "mlp", str(broken), *quick_flags(64, steps=2), "--out", str(tmp_path / "run"))
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    said = [index for index, line in enumerate(lines) if line.startswith("failed before training:")]
    trained = next(index for index, line in enumerate(lines) if "ok mlp" in line)
    assert len(said) == 2 and max(said) < trained  # each once, before mlp trained
    assert "nothere.py: model file not found" in lines[said[0]]
    assert f"{broken}: forward failed on input" in lines[said[1]] and f"{broken}: {broken}" not in lines[said[1]]
