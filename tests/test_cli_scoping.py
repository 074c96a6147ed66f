"""Commands leave the process as they found it: logging, and torch's thread count for check."""

from __future__ import annotations

import logging

from typer.testing import CliRunner

from alrao_cli.cli.app import app


def test_a_screen_leaves_the_callers_logging_as_it_was(tmp_path):
    root_handlers = list(logging.getLogger().handlers)
    result = CliRunner().invoke(
        app, ["screen", "mlp", "--steps", "2", "--subset", "64", "--no-plots", "-q", "--debug",
              "--device", "cpu", "--out", str(tmp_path / "run")],
    )
    assert result.exit_code == 0, result.output
    assert logging.getLogger().handlers == root_handlers
    assert logging.getLogger("alrao_cli").handlers == []
