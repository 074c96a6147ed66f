"""What people read: every --help at 80 columns, the defaults it states, `alrao methods`, `--version`."""

from __future__ import annotations

import importlib.metadata
import io
import json
import re

import pytest
from rich.console import Console
from typer.testing import CliRunner

from alrao_cli.cli import catalog
from alrao_cli.cli.app import app
from alrao_cli.config.schema import DEFAULTS
from alrao_cli.study.methods import method_catalog
from support import main_in_a_fresh_process

runner = CliRunner()

COMMANDS = ["", "screen", "compare", "check", "report", "init", "models", "methods"]
_OPTION_ROW = re.compile(r"^│\s+(\*\s+)?-")


def help_at(command: str, columns: int) -> str:
    result = runner.invoke(app, [*command.split(), "--help"], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.output


def option_text(output: str, flag: str) -> str:
    """The rows of ``flag`` in a --help (its line and the ones that continue it), as one line of words."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"^│\s+{re.escape(flag)}[\s/]", line))
    rows = [lines[start]]
    for line in lines[start + 1:]:
        if _OPTION_ROW.match(line) or not line.startswith("│"):
            break
        rows.append(line)
    return " ".join(" ".join(row.strip("│ ").split()) for row in rows)


def panel_of(output: str, flag: str) -> str:
    panel = None
    for line in output.splitlines():
        title = re.match(r"^╭─ (.+?) ─", line)
        if title:
            panel = title.group(1)
        elif re.match(rf"^│\s+{re.escape(flag)}\s", line):
            return panel
    raise AssertionError(f"{flag} is not in the help")


@pytest.mark.parametrize("command", COMMANDS, ids=[command or "alrao" for command in COMMANDS])
def test_every_help_reads_whole_at_80_columns(command):
    output = help_at(command, 80)
    assert "…" not in output  # rich cuts a token longer than its cell with an ellipsis
    assert max(len(line) for line in output.splitlines()) <= 80


@pytest.mark.parametrize("command", COMMANDS, ids=[command or "alrao" for command in COMMANDS])
def test_every_help_states_defaults_one_way(command):
    output = " ".join(help_at(command, 200).split())
    assert "(default" not in output and "Default:" not in output
    assert "Mlrsnet" not in output and "Mnist1d" not in output


def test_the_schedule_net_path_is_shown_whole_at_80_columns():
    text = option_text(help_at("compare", 80), "--schedule-net")
    assert text.startswith("--schedule-net <str> mlrsnet: a net saved by an mlrsnet run")
    assert "schedule-nets/ARCH-seedS.pt" in text


def _shown(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@pytest.mark.parametrize("command", ["screen", "compare"])
def test_study_options_state_the_schema_defaults(command):
    output = help_at(command, 80)
    for flag, name in [
        ("--seeds", "seeds"), ("--val-fraction", "val_fraction"), ("--loader-workers", "loader_workers"),
        ("--batch-size", "batch_size"), ("--lr-min", "lr_min"), ("--lr-max", "lr_max"), ("--copies", "copies"),
        ("--seed", "seed"), ("--device", "device"), ("--meta-iters", "meta_iters"), ("--data", "data"),
    ]:
        assert f"[default: {_shown(getattr(DEFAULTS, name))}]" in option_text(output, flag), flag
    for flag, name in [("--plots", "plots"), ("--augment", "augment"), ("--download", "download")]:
        on = name if getattr(DEFAULTS, name) else f"no-{name}"
        assert f"[default: {on}]" in option_text(output, flag), flag
    grid = ",".join(_shown(rate) for rate in DEFAULTS.grid)
    assert f"[default: {grid}]" in option_text(help_at(command, 200), "--grid")


def test_a_compare_states_its_default_methods_and_adam():
    output = help_at("compare", 80)
    assert "[default: alrao,sgd-grid,adam]" in option_text(output, "--methods")
    assert f"[default: {'adam' if DEFAULTS.adam else 'no-adam'}]" in option_text(output, "--adam")


def test_check_lists_its_own_choices_together():
    output = help_at("check", 80)
    assert panel_of(output, "--head") == panel_of(output, "--seed") == panel_of(output, "--steps") == "Checks"
    assert panel_of(output, "--junit-xml") == panel_of(output, "--json") == "Output"
    assert f"[default: {DEFAULTS.seed}]" in option_text(output, "--seed")
    assert "[default: 5]" in option_text(output, "--steps")


def test_report_format_has_a_short_label_and_lists_the_choices():
    text = option_text(help_at("report", 80), "--format")
    assert text.startswith("--format -f FORMAT")
    assert "table, json, csv or markdown" in text and "[default: table]" in text


@pytest.mark.parametrize("width", [80, 120])
def test_alrao_methods_shows_every_default_whole_on_one_line(monkeypatch, width):
    screen = Console(width=width, file=io.StringIO())
    monkeypatch.setattr(catalog, "out", screen)
    result = runner.invoke(app, ["methods"])
    assert result.exit_code == 0, result.output
    lines = screen.file.getvalue().splitlines()
    assert max(len(line) for line in lines) <= width
    for info in method_catalog():
        assert any(re.match(rf"^│ {re.escape(info.name)}\s", line) for line in lines), info.name
        for key, value in info.defaults.items():
            setting = f"{key}={_shown(value)}"
            assert any(f" {setting} " in line for line in lines), (info.name, setting)


def test_alrao_methods_json_lists_the_defaults_as_values():
    result = runner.invoke(app, ["methods", "--json"])
    assert result.exit_code == 0, result.output
    assert result.stdout.lstrip().startswith("[")
    assert {entry["name"]: entry["defaults"] for entry in json.loads(result.stdout)} == {
        info.name: info.defaults for info in method_catalog()
    }


def test_version_prints_the_installed_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output == f"alrao {importlib.metadata.version('alrao-cli')}\n"


def test_version_without_the_distribution_installed_says_so(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output == "alrao unknown (alrao-cli is not installed)\n"


def test_version_answers_without_importing_torch():
    lines = main_in_a_fresh_process(["--version"])
    assert lines == [f"alrao {importlib.metadata.version('alrao-cli')}", "exit 0 False"]
