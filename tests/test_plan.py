"""Planning a study: which runs, as plain picklable specs an executor can carry anywhere."""

from __future__ import annotations

import pickle

import pytest

from alrao_cli.config import build_config
from alrao_cli.errors import AlraoUserError
from alrao_cli.executor import SequentialExecutor
from alrao_cli.plan import plan_study, resolve_device


def test_a_screen_is_one_alrao_run_per_architecture_and_seed():
    plan = plan_study(build_config(None, {"archs": ["mlp", "cnn1d"], "seeds": 2, "device": "cpu"}), "screen")
    assert [spec.key for spec in plan.runs] == [
        "mlp|alrao|seed=0", "mlp|alrao|seed=1", "cnn1d|alrao|seed=0", "cnn1d|alrao|seed=1",
    ]
    assert plan.seeds == (0, 1) and not plan.unresolved


def test_compare_adds_the_grid_and_adam_and_screen_baselines_do_too():
    config = {"archs": ["mlp"], "grid": "1e-3:1e-1:3", "device": "cpu"}
    compare = plan_study(build_config(None, config), "compare")
    assert [(s.method.name, s.method.lr) for s in compare.runs] == [
        ("alrao", None), ("sgd", 1e-3), ("sgd", 1e-2), ("sgd", 1e-1), ("adam", 1e-3),
    ]
    screen = plan_study(build_config(None, {**config, "baselines": ["adam"]}), "screen")
    assert [s.method.name for s in screen.runs] == ["alrao", "adam"]
    assert len({s.key for s in compare.runs}) == len(compare.runs)


def test_alrao_settings_and_heads_reach_the_method_spec():
    config = build_config(
        None, {"archs": ["mlp"], "lr_min": 1e-4, "lr_max": 1.0, "copies": 4, "heads": {"*": "net.3"}, "device": "cpu"}
    )
    (spec,) = plan_study(config, "screen").runs
    assert spec.method.options["lr_min"] == 1e-4 and spec.method.options["copies"] == 4
    assert spec.method.options["head"] == "net.3"


def test_data_settings_reach_every_runs_data_spec():
    config = build_config(
        None, {"archs": ["mlp"], "subset": 300, "val_fraction": 0.25, "seed": 3, "device": "cpu"}
    )
    for spec in plan_study(config, "compare").runs:
        assert (spec.data.subset, spec.data.val_fraction, spec.data.seed) == (300, 0.25, 3)


def test_specs_are_plain_data_that_survive_pickling():
    plan = plan_study(build_config(None, {"archs": ["mlp"], "steps": 5, "device": "cpu"}), "compare")
    for spec in plan.runs:
        assert pickle.loads(pickle.dumps(spec)) == spec
        assert spec.to_dict()["budget"] == {"epochs": None, "steps": 5, "seconds": None}


def test_unknown_architectures_are_set_aside_unless_nothing_is_left():
    plan = plan_study(build_config(None, {"archs": ["mlp", "nozoo"], "device": "cpu"}), "screen")
    assert [u.label for u in plan.unresolved] == ["nozoo"] and len(plan.runs) == 1
    with pytest.raises(AlraoUserError, match="nozoo"):
        plan_study(build_config(None, {"archs": ["nozoo"], "device": "cpu"}), "screen")


def test_device_resolution():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "cuda", "mps")


def test_the_sequential_executor_yields_results_in_order():
    results = list(SequentialExecutor().run([3, 1, 2], lambda spec: spec * 10))
    assert results == [30, 10, 20]
