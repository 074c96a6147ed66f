"""Shared test set-up: small, deterministic, quiet, and never touching the user's cache."""

from __future__ import annotations

import os

import pytest
import torch

# pytest-xdist's workers inherit COLUMNS=80 and LINES=24 from execnet; the CLI reads COLUMNS to
# size its tables, so drop them here (before any test imports the CLI) and every worker
# renders as a plain serial run does.
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)

# Two xdist workers on two cores: one thread each, or they fight over the cores.
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else 2)


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Generated datasets go to a per-session folder (MNIST-1D is made once, ~1 s)."""
    cache = tmp_path_factory.mktemp("alrao-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ALRAO_CACHE_DIR", str(cache))
        yield cache
