"""Optimizers and rate schedules that screen an architecture in one run, beside Alrao.

- :mod:`~alrao_cli.optimizers.hypergradient`: SGD-HD and Adam-HD, one rate learned online;
- :mod:`~alrao_cli.optimizers.mlhd`: global, layer and unit rates learned and combined;
- :mod:`~alrao_cli.optimizers.larc`: LARS / LARC, per-tensor trust-ratio rates;
- :mod:`~alrao_cli.optimizers.onecycle`: the LR range test and the 1cycle schedule;
- :mod:`~alrao_cli.optimizers.layerwise`: per-layer rates set by depth.
"""

from alrao_cli.optimizers.hypergradient import SGDHD, AdamHD, adam_hd, sgd_hd
from alrao_cli.optimizers.larc import LARC, larc
from alrao_cli.optimizers.layerwise import interpolated_param_groups, layerwise_param_groups, parameterised_modules
from alrao_cli.optimizers.mlhd import SGDMLHD, AdamMLHD, GroupRates, TensorRates, mlhd
from alrao_cli.optimizers.onecycle import RangeTestResult, lr_range_test, one_cycle, range_test_step

__all__ = [
    "LARC",
    "SGDHD",
    "SGDMLHD",
    "AdamHD",
    "AdamMLHD",
    "GroupRates",
    "RangeTestResult",
    "TensorRates",
    "adam_hd",
    "interpolated_param_groups",
    "larc",
    "layerwise_param_groups",
    "lr_range_test",
    "mlhd",
    "one_cycle",
    "parameterised_modules",
    "range_test_step",
    "sgd_hd",
]
