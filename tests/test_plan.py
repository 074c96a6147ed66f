"""Planning a study: which runs, as plain picklable specs an executor can carry anywhere."""

from __future__ import annotations

import pickle
import textwrap

import pytest
import torch
from PIL import Image

from alrao_cli.config.schema import build_config
from alrao_cli.data.spec import DataInfo
from alrao_cli.errors import AlraoUserError
from alrao_cli.study.plan import data_spec_of, plan_study, resolve_device
from alrao_cli.data.load import cached_data

ZOO = ["cnn1d", "gru", "lstm", "mlp", "mobilenet_small", "resnet_small", "vgg_small"]
IMAGES = DataInfo("images", 10, (3, 32, 32), 100, 10)
SIGNALS = DataInfo("signals", 10, (40,), 100, 10)


def plan(config: dict, kind: str = "screen", data_info: DataInfo | None = SIGNALS):
    return plan_study(build_config(None, {"device": "cpu", **config}), kind, data_info)


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
    assert spec.method.options.lr_min == 1e-4 and spec.method.options.copies == 4
    assert spec.method.options.head == "net.3"


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


def test_when_nothing_can_run_the_first_problem_is_raised_with_its_cause(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("def oops(:\n")
    with pytest.raises(AlraoUserError, match="syntax error in .*broken.py, line 1") as caught:
        plan({"archs": [str(broken), "nozoo"]})
    assert isinstance(caught.value.__cause__, SyntaxError)  # what --debug shows


@pytest.fixture
def machine(monkeypatch):
    """Pretend the machine has the accelerators a test says: ``machine(cuda=2, mps=True)``."""

    def pretend(cuda: int = 0, mps: bool = False) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)

    return pretend


@pytest.mark.parametrize(
    ("cuda", "mps", "chosen"), [(1, True, "cuda"), (2, False, "cuda"), (0, True, "mps"), (0, False, "cpu")]
)
def test_auto_picks_cuda_then_mps_then_cpu(machine, cuda, mps, chosen):
    machine(cuda=cuda, mps=mps)
    assert resolve_device("auto") == chosen


@pytest.mark.parametrize("name", ["cpu", "cuda", "cuda:0", "cuda:1", "mps"])
def test_an_available_device_is_kept_as_named(machine, name):
    machine(cuda=2, mps=True)
    assert resolve_device(name) == name


@pytest.mark.parametrize(
    ("cuda", "mps", "name", "message", "hint"),
    [
        (0, True, "cuda", "--device cuda: CUDA is not available", "--device cpu"),
        (0, False, "cuda:0", "--device cuda:0: CUDA is not available", "--device cpu"),
        (2, False, "cuda:2", "--device cuda:2: this machine has 2 CUDA device(s)", "cuda:0"),
        (1, False, "cuda:5", "--device cuda:5: this machine has 1 CUDA device(s)", "cuda:0"),
        (1, False, "mps", "--device mps: MPS is not available", "--device cpu"),
    ],
)
def test_an_unavailable_device_is_a_usage_error(machine, cuda, mps, name, message, hint):
    machine(cuda=cuda, mps=mps)
    with pytest.raises(AlraoUserError) as caught:
        resolve_device(name)
    assert caught.value.message.startswith(message) and hint in caught.value.hint


# -- a whole-zoo study: the zoo models that fit the data -------------------------------------------
def test_with_no_arch_every_zoo_model_runs_on_1d_data():
    result = plan({})
    assert [spec.arch for spec in result.runs] == ZOO
    assert result.skipped == () and result.skipped_note is None


def test_with_no_arch_image_data_leaves_out_the_zoo_models_that_take_only_1d_examples():
    result = plan({}, data_info=IMAGES)
    assert [spec.arch for spec in result.runs] == [name for name in ZOO if name != "cnn1d"]
    assert [(arch.name, arch.fits) for arch in result.skipped] == [("cnn1d", "1-D [L]")]
    assert result.skipped_note == "skipped cnn1d (fits 1-D [L]): the data's examples are shaped [3, 32, 32]"


def test_named_archs_are_never_left_out_and_the_data_is_not_read():
    result = plan({"archs": ["cnn1d"]}, data_info=None)  # mnist1d is not loaded for this
    assert [spec.arch for spec in result.runs] == ["cnn1d"] and result.skipped == ()


def test_no_zoo_model_for_the_data_is_a_usage_error():
    with pytest.raises(AlraoUserError, match=r"no zoo model takes examples shaped \[2, 3, 4, 5\]") as caught:
        plan({}, data_info=DataInfo("video", 4, (2, 3, 4, 5), 10, 2))
    assert "torchvision:NAME" in caught.value.hint


def test_without_data_info_the_shape_comes_from_the_data_loaded_once(tmp_path):
    for label in ("red", "blue"):
        (tmp_path / label).mkdir()
        for index in range(3):
            Image.new("RGB", (8, 8), label).save(tmp_path / label / f"{index}.png")
    config = build_config(None, {"data": f"imagefolder:{tmp_path}", "device": "cpu"})
    cached_data.cache_clear()
    result = plan_study(config, "screen")
    assert "cnn1d" not in [spec.arch for spec in result.runs] and result.input_shape == (3, 32, 32)
    cached_data(data_spec_of(config))  # what the study does next: served from the cache
    assert (cached_data.cache_info().misses, cached_data.cache_info().hits) == (1, 1)


# -- config keys that name architectures ---------------------------------------------------------
TWO_MODELS = """
    from torch import nn
    from alrao_cli.sources.registry import register_model

    @register_model("one")
    def small(num_classes, input_shape, width=4):
        return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], num_classes))

    @register_model("two")
    def large(num_classes, input_shape, width=8):
        return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], num_classes))
"""


@pytest.mark.parametrize(
    ("config", "message", "hint"),
    [
        ({"model_kwargs": {"mpl": {"width": 16}}}, "config key 'model_kwargs.mpl' names no architecture",
         "did you mean 'mlp'? its architectures: the whole zoo"),
        ({"archs": ["mlp", "cnn1d"], "model_kwargs": {"cnn": {"width": 8}}}, "'model_kwargs.cnn' names no",
         "did you mean 'cnn1d'? its architectures: mlp, cnn1d"),
        ({"archs": ["mlp"], "heads": {"lstm": "head"}}, "config key 'heads.lstm' names no architecture",
         "its architectures: mlp"),
        ({"archs": ["mlp"], "model_kwargs": {"mlp": {"bogus": 1, "depth": 2}}},
         "config key 'model_kwargs.mlp': mlp does not take the model argument(s) bogus", "it takes: width, depth"),
        ({"archs": ["mlp"], "model_kwargs": {"mlp": {"num_classes": 3}}},
         "config key 'model_kwargs.mlp': model argument(s) num_classes cannot be set", "from the data"),
    ],
    ids=["zoo-typo", "arch-typo", "heads-typo", "bad-argument", "data-argument"],
)
def test_config_keys_must_name_an_architecture_and_arguments_it_takes(config, message, hint):
    with pytest.raises(AlraoUserError) as caught:
        plan(config)
    assert message in caught.value.message and "\n" not in caught.value.message
    assert hint in caught.value.hint


def test_keys_may_name_an_arch_as_written_or_as_expanded_and_heads_may_say_every_arch(tmp_path):
    models = tmp_path / "two.py"
    models.write_text(textwrap.dedent(TWO_MODELS))
    config = {
        "archs": [str(models), "mlp", "nozoo"],
        "model_kwargs": {str(models): {"width": 2}, f"{models}:large": {"width": 3}, "nozoo": {"x": 1}},
        "heads": {"*": "1", "mlp": "head"},
    }
    result = plan(config)
    assert [(spec.label, spec.model_kwargs) for spec in result.runs] == [
        (f"{models}:small", {"width": 2}), (f"{models}:large", {"width": 2}), ("mlp", {}),
    ]
    assert [spec.method.options.head for spec in result.runs] == ["1", "1", "head"]
    assert [u.label for u in result.unresolved] == ["nozoo"]
    narrowed = plan({"archs": [f"{models}:large"], "model_kwargs": {f"{models}:large": {"width": 3}}})
    assert narrowed.runs[0].model_kwargs == {"width": 3}


def test_file_models_are_labelled_as_written_and_resolved_from_the_workdir(tmp_path, monkeypatch):
    folder = tmp_path / "project" / "models"
    folder.mkdir(parents=True)
    (folder / "several.py").write_text(textwrap.dedent("""
        from torch import nn
        from alrao_cli.sources.registry import register_model

        @register_model("one linear layer")
        def narrow(num_classes, input_shape):
            return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], num_classes))

        @register_model("one hidden layer")
        def wide(num_classes, input_shape):
            return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], 8), nn.ReLU(), nn.Linear(8, num_classes))
    """))
    monkeypatch.chdir(tmp_path)  # not the workdir: relative paths must be read from the workdir
    result = plan({"archs": ["models/several.py"], "workdir": str(tmp_path / "project"), "model_kwargs": {}})
    assert [spec.label for spec in result.runs] == ["models/several.py:narrow", "models/several.py:wide"]
    assert [spec.key for spec in result.runs] == ["models/several.py:narrow|alrao|seed=0", "models/several.py:wide|alrao|seed=0"]
    assert {spec.arch for spec in result.runs} == {f"{folder / 'several.py'}:narrow", f"{folder / 'several.py'}:wide"}


def test_method_names_what_the_screen_ranks_by_and_a_portfolio_runs_each():
    config = build_config(None, {"archs": ["mlp"], "method": "alrao,adam", "baselines": ["sgd-grid"], "grid": [0.1, 1.0], "device": "cpu"})
    plan = plan_study(config, "screen")
    assert [(spec.method.name, spec.method.lr) for spec in plan.runs] == [
        ("alrao", None), ("adam", 1e-3), ("sgd", 0.1), ("sgd", 1.0),
    ]


def test_an_unknown_method_gets_did_you_mean():
    config = build_config(None, {"archs": ["mlp"], "method": "adamm", "device": "cpu"})
    with pytest.raises(AlraoUserError, match="--method: unknown method 'adamm'") as caught:
        plan_study(config, "screen")
    assert "did you mean 'adam'" in caught.value.hint


def test_compare_runs_the_paper_baselines_unless_others_are_named():
    default = plan_study(build_config(None, {"archs": ["mlp"], "grid": [0.1], "device": "cpu"}), "compare")
    assert [spec.method.name for spec in default.runs] == ["alrao", "sgd", "adam"]
    named = build_config(None, {"archs": ["mlp"], "method": ["adam"], "baselines": ["sgd-grid"], "grid": [0.1], "device": "cpu"})
    assert [spec.method.name for spec in plan_study(named, "compare").runs] == ["adam", "sgd"]


def test_two_spellings_of_one_model_are_trained_once(tmp_path, monkeypatch):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "net.py").write_text(
        "from torch import nn\n"
        "def build_model(num_classes, input_shape):\n"
        "    return nn.Sequential(nn.Linear(input_shape[0], 8), nn.ReLU(), nn.Linear(8, num_classes))\n"
    )
    monkeypatch.chdir(tmp_path)
    config = build_config(None, {"archs": ["models/net.py", "./models/net.py", "models/../models/net.py", "mlp"], "device": "cpu"})
    plan = plan_study(config, "screen")
    assert [spec.label for spec in plan.runs] == ["models/net.py", "mlp"]
