"""Learned learning-rate schedules, usable without the command line.

* :mod:`~alrao_cli.learned.mlrsnet`: MLR-SNet (Shu et al.), an LSTM mapping the training
  loss to the rate, meta-trained online (Algorithm 1) and reused frozen (meta-test).
* :mod:`~alrao_cli.learned.reversible`: exact hypergradients of a per-block, per-layer
  schedule by reversing SGD with momentum (Maclaurin, Duvenaud & Adams, Algorithms 1-2).
"""

from alrao_cli.learned.mlrsnet import MLRSNetSGD, MLRSNetTrainer
from alrao_cli.learned.net_file import load_schedule_net, save_schedule_net
from alrao_cli.learned.reversible import (
    ExactState,
    Hypergradient,
    MetaResult,
    MetaRound,
    ReversibleProblem,
    Schedule,
    ScheduleTuner,
    hypergradient,
    meta_optimize,
    reverse_hypergradient,
    train_reversibly,
    validation_loss,
)
from alrao_cli.learned.schedule_net import ScheduleNet

__all__ = [
    "ExactState",
    "Hypergradient",
    "MLRSNetSGD",
    "MLRSNetTrainer",
    "MetaResult",
    "MetaRound",
    "ReversibleProblem",
    "Schedule",
    "ScheduleNet",
    "ScheduleTuner",
    "hypergradient",
    "load_schedule_net",
    "meta_optimize",
    "reverse_hypergradient",
    "save_schedule_net",
    "train_reversibly",
    "validation_loss",
]
