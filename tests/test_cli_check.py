"""`alrao check` as a user runs it: through Typer's runner, reading what it prints and writes."""

from __future__ import annotations

import json
import re
import shlex
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch
import typer
import yaml
from typer.testing import CliRunner

from alrao_cli.study.check import CHECK_ITEMS
from alrao_cli.cli.app import app
from support import HEAD_FIRST_MODEL, NEEDS_WIDTH_MODEL, two_colour_images

runner = CliRunner()
DOCS_CI = Path(__file__).resolve().parents[1] / "docs" / "ci.md"

HEADER = "import math\n\nimport torch\nfrom torch import nn\n\n\n"

# A one-letter class name: `:B:` is rich's emoji code for a letter B in a red square.
B_MODEL = """
class B(nn.Module):
    def __init__(self, num_classes, input_shape):
        super().__init__()
        self.head = nn.Linear(math.prod(input_shape), num_classes - 1)

    def forward(self, x):
        return self.head(x)
"""

NO_HEAD_MODEL = """
class NoHead(nn.Module):
    def __init__(self, num_classes, input_shape):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(math.prod(input_shape), num_classes))

    def forward(self, x):
        return x @ self.weight
"""

GAIN_MODEL = """
class Gain(nn.Module):
    def __init__(self, num_classes, input_shape):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(math.prod(input_shape)))
        self.head = nn.Linear(math.prod(input_shape), num_classes)

    def forward(self, x):
        return self.head(x * self.gain)
"""


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """`check` sets one thread for the process it runs in; give the other tests theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def write_model(folder: Path, name: str, source: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(HEADER + source)
    return str(path)


def invoke(*argv: str):
    return runner.invoke(app, ["check", *argv])


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_a_zoo_model_passes_with_the_table_and_the_total_time():
    result = invoke("mlp")
    assert result.exit_code == 0, result.output
    assert re.search(r"│ mlp +│" + r" +✓ +│" * len(CHECK_ITEMS), result.stdout), result.stdout
    assert re.search(r"1 architecture\(s\) checked in \d+\.\d s: 1 passed, 0 failed", result.stdout)
    assert "✗" not in result.stdout and "note:" not in result.stdout


def test_a_broken_file_prints_one_line_per_failure_and_writes_junit(tmp_path):
    # A long folder name, brackets included: each reason is far wider than any console,
    # and "[red]" must stay text, not markup.
    folder = tmp_path / ("[red]models-" + "x" * 150)
    b_model = write_model(folder, "b_model", B_MODEL)
    no_head = write_model(folder, "no_head", NO_HEAD_MODEL)
    report = tmp_path / "reports" / "alrao.xml"
    result = invoke(b_model, no_head, "mlp", "--junit-xml", str(report))
    assert result.exit_code == 1, result.output
    failures = [line for line in lines(result.stdout) if line.startswith("✗")]
    assert failures == [
        f"✗ {b_model}:B: forward: the output is [16, 9], expected [16, 10] ([batch, num_classes]) "
        "for an input of [16, 40]",
        f"✗ {no_head}:NoHead: wrap: no output layer found: the model has no nn.Linear with 10 outputs (NoHead) "
        "(end the model with nn.Linear(d, num_classes), or name its output layer "
        "(--head NAME on the command line, head= in Python))",
    ]
    assert "🅱" not in result.stdout and "Traceback" not in result.output

    root = ET.parse(report).getroot()
    assert root.tag == "testsuites"
    # mlp passes all six; b_model fails its 2nd item (4 skipped), no_head its 3rd (3 skipped)
    assert (root.get("tests"), root.get("failures"), root.get("skipped"), root.get("errors")) == ("18", "2", "7", "0")
    (suite,) = root
    failed = [(case.get("classname"), case.get("name")) for case in suite if case.find("failure") is not None]
    assert failed == [(f"{b_model}:B", "forward"), (f"{no_head}:NoHead", "wrap")]


def test_a_class_named_b_is_not_an_emoji(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a short relative path: the line fits any console, wrapping or not
    Path("b.py").write_text(HEADER + "class B(nn.Module):\n    def __init__(self, num_classes, input_shape):\n        raise ValueError('no')\n")
    result = invoke("b.py")
    assert result.exit_code == 1
    (failure,) = [line for line in lines(result.stdout) if line.startswith("✗")]
    assert failure.startswith("✗ b.py:B: build: ") and "ValueError: no" in failure and "🅱" not in result.stdout


def test_json_prints_only_json_on_stdout(tmp_path):
    no_head = write_model(tmp_path, "no_head", 'print("importing no_head")\n' + NO_HEAD_MODEL)
    result = invoke("mlp", no_head, "--json")
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert payload["passed"] is False
    assert [(entry["arch"], entry["passed"]) for entry in payload["architectures"]] == [
        ("mlp", True), (f"{no_head}:NoHead", False)
    ]
    statuses = [item["status"] for item in payload["architectures"][1]["items"]]
    assert statuses == ["passed", "passed", "failed", "skipped", "skipped", "skipped"]
    assert "importing no_head" in result.stderr  # what model code prints goes to stderr


def test_fallback_parameters_are_noted_after_the_table(tmp_path):
    gain = write_model(tmp_path, "gain", GAIN_MODEL)
    result = invoke(gain)
    assert result.exit_code == 0, result.output
    table_end = result.stdout.index("checked in")
    assert result.stdout.index(f"note: {gain}:Gain: wrap: one rate per tensor (no per-feature rule) for: gain\n") > table_end


def test_head_names_the_output_layer(tmp_path):
    head_first = write_model(tmp_path, "head_first", HEAD_FIRST_MODEL)
    assert invoke(head_first).exit_code == 0  # found by the probe batch
    misnamed = invoke(head_first, "--head", "body")
    assert misnamed.exit_code == 1 and f"✗ {head_first}:HeadFirst: wrap: " in misnamed.stdout
    named = invoke(head_first, "--head", "head")
    assert named.exit_code == 0, named.output


def test_a_config_gives_archs_heads_and_model_kwargs(tmp_path):
    head_first = write_model(tmp_path, "head_first", HEAD_FIRST_MODEL)
    needs_width = write_model(tmp_path, "needs_width", NEEDS_WIDTH_MODEL)
    config = tmp_path / "screen.yaml"
    config.write_text(yaml.safe_dump({
        "archs": [head_first, needs_width],
        "heads": {head_first: "head"},
        "model_kwargs": {needs_width: {"width": 16}},
        "epochs": 20,  # a screen's option: read and checked, no part in a check
    }))
    result = invoke("--config", str(config), "--json")
    assert result.exit_code == 0, result.output
    architectures = json.loads(result.stdout)["architectures"]
    assert [entry["arch"] for entry in architectures] == [f"{head_first}:HeadFirst", f"{needs_width}:NeedsWidth"]
    assert architectures[1]["items"][0]["detail"] == f"NeedsWidth, {40 * 16 + 16 + 16 * 10 + 10:,} parameters"


def test_the_data_options_of_screen_work_here_too():
    result = invoke("mlp", "--subset", "20", "--val-fraction", "0.2", "--no-download", "--data-dir", "unused")
    assert result.exit_code == 0, result.output


BAD_INPUTS = [
    (["--data", "bogus"], "unknown data source 'bogus'"),
    (["--val-fraction", "1.5"], "--val-fraction must be strictly between 0 and 1"),
    (["--subset", "0"], "--subset must be at least 1"),
    (["--config", "no/such.yaml"], "config file no/such.yaml not found"),
    (["mlp", "--junit-xml", "."], "the JUnit report path . is a folder"),
    (["mlp", "--junit-xml", "/proc/nope/x.xml"], "cannot write the JUnit report /proc/nope/x.xml"),
]


@pytest.mark.parametrize("argv, message", BAD_INPUTS, ids=[" ".join(argv) for argv, _ in BAD_INPUTS])
def test_a_usage_error_is_one_line_exit_2_before_any_check(argv, message):
    result = invoke(*argv)
    assert result.exit_code == 2
    assert lines(result.output) == [lines(result.output)[0]] and message in result.output
    assert result.output.startswith("error: ")
    assert "Traceback" not in result.output and "architecture" not in result.output


# -- docs/ci.md: the examples are valid and use only options that exist -----------------
def yaml_blocks() -> list[dict]:
    return [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", DOCS_CI.read_text(), flags=re.S)]


def check_options() -> set[str]:
    command = typer.main.get_command(app).commands["check"]
    return {name for param in command.params for name in (*param.opts, *param.secondary_opts)}


def test_the_ci_page_yaml_parses_and_avoids_known_traps():
    workflow, pre_commit = yaml_blocks()
    steps = workflow["jobs"]["alrao-check"]["steps"]
    setup = next(step for step in steps if step.get("uses", "").startswith("actions/setup-python"))
    # cache: pip alone fails in a repository without requirements.txt or pyproject.toml
    assert "cache" not in setup.get("with", {}) or "cache-dependency-path" in setup["with"]
    reporter = next(step for step in steps if step.get("uses", "").startswith("dorny/test-reporter"))
    assert reporter and workflow["permissions"]["checks"] == "write"
    (hook,) = pre_commit["repos"][0]["hooks"]
    files = re.compile(hook["files"])
    assert files.search("models/net.py")
    assert not any(files.search(path) for path in ("models/__init__.py", "models/_helpers.py", "models/sub/net.py"))


def test_the_ci_page_commands_use_only_options_check_has():
    text = DOCS_CI.read_text()
    commands = re.findall(r"alrao check\b([^\n`]*)", text)
    assert len(commands) >= 3
    tokens = [token.strip("[]") for command in commands for token in shlex.split(command, comments=True)]
    used = {flag.split("=")[0] for token in tokens for flag in token.split("/") if flag.startswith("--")}
    assert used and used <= check_options(), used - check_options()


def test_help_shows_the_output_shape_and_the_new_options():
    result = runner.invoke(app, ["check", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "[batch, num_classes]" in result.output and "models/[!_]*.py" in result.output
    assert all(option in result.output for option in ("--head", "--config", "--download", "--subset", "--val-fraction"))


def test_the_whole_zoo_on_images_leaves_out_the_1d_cnn(tmp_path):
    root = two_colour_images(tmp_path / "images", per_class=10, size=8)
    result = invoke("--data", f"imagefolder:{root}", "--json")
    assert result.exit_code == 0, result.output
    checked = [entry["arch"] for entry in json.loads(result.stdout)["architectures"]]
    assert checked == ["gru", "lstm", "mlp", "mobilenet_small", "resnet_small", "vgg_small"]
    assert "note: skipped cnn1d (fits 1-D [L])" in result.stderr
