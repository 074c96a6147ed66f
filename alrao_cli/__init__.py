"""alrao: screen neural-network architectures without tuning their learning rate.

The library half: wrap a model with :class:`AlraoModel`, train it with :class:`AlraoSGD`
and :func:`alrao_step` in your own loop. The command line (``alrao screen``) builds on it.

The names below are imported on first use (PEP 562), not with the package: the command
line imports ``alrao_cli.cli.app``, and ``alrao --help`` should not wait seconds for torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from alrao_cli.alrao import (
        AlraoAdam,
        AlraoLoss,
        AlraoModel,
        AlraoSGD,
        Switch,
        alrao_step,
        apply_alrao_loss,
        sample_feature_lrs,
    )
    from alrao_cli.errors import AlraoDivergedError, AlraoUserError
    from alrao_cli.sources.registry import register_model

_HOMES = {
    "AlraoAdam": "alrao_cli.alrao",
    "AlraoDivergedError": "alrao_cli.errors",
    "AlraoLoss": "alrao_cli.alrao",
    "AlraoModel": "alrao_cli.alrao",
    "AlraoSGD": "alrao_cli.alrao",
    "AlraoUserError": "alrao_cli.errors",
    "Switch": "alrao_cli.alrao",
    "alrao_step": "alrao_cli.alrao",
    "apply_alrao_loss": "alrao_cli.alrao",
    "register_model": "alrao_cli.sources.registry",
    "sample_feature_lrs": "alrao_cli.alrao",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'alrao_cli' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
