"""alrao: screen neural-network architectures without tuning their learning rate.

The library half: wrap a model with :class:`AlraoModel`, train it with :class:`AlraoSGD`
and :func:`alrao_step` in your own loop. The command line (``alrao screen``) builds on it.
"""

from alrao_cli.alrao import (
    AlraoAdam,
    AlraoLoss,
    AlraoModel,
    AlraoSGD,
    Switch,
    alrao_step,
    sample_feature_lrs,
)
from alrao_cli.errors import AlraoDivergedError, AlraoUserError

__all__ = [
    "AlraoAdam",
    "AlraoDivergedError",
    "AlraoLoss",
    "AlraoModel",
    "AlraoSGD",
    "AlraoUserError",
    "Switch",
    "alrao_step",
    "sample_feature_lrs",
]
