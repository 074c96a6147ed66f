"""The Alrao method, usable without the command line."""

from alrao_cli.alrao.lr_sampling import sample_feature_lrs
from alrao_cli.alrao.model import AlraoLoss, AlraoModel
from alrao_cli.alrao.optim import AlraoAdam, AlraoSGD
from alrao_cli.alrao.step import alrao_step, apply_alrao_loss
from alrao_cli.alrao.switch import Switch

__all__ = [
    "AlraoAdam",
    "AlraoLoss",
    "AlraoModel",
    "AlraoSGD",
    "Switch",
    "alrao_step",
    "apply_alrao_loss",
    "sample_feature_lrs",
]
