"""Shared test set-up: small, deterministic, quiet, and never touching the user's cache."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Generated datasets go to a per-session folder (MNIST-1D is made once, ~1 s)."""
    cache = tmp_path_factory.mktemp("alrao-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ALRAO_CACHE_DIR", str(cache))
        yield cache
