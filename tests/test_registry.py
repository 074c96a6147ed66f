"""The architecture registry: every ARCH form, argument passing, and every user error.

Model files are written into ``tmp_path``; each test gets fresh files (and so fresh
module names), so the per-process import cache never leaks between tests.
"""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torchvision.models
from torch import nn

import alrao_cli.zoo.mlp
from alrao_cli.errors import AlraoUserError
from alrao_cli.sources.registry import ModelEntry, find_torchvision_models, find_zoo, import_model_file, list_torchvision_models, list_zoo, models_in_file, natural_key
from alrao_cli.sources.build import build_model, check_model_arguments, count_parameters
from alrao_cli.sources.arch import expand_arch


def write(folder: Path, name: str, source: str) -> str:
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return str(path)


TWO_REGISTERED = """
    from torch import nn
    from alrao_cli.sources.registry import register_model

    @register_model("tiny linear", fits=("sequence",))
    def tiny_a(num_classes, input_shape):
        return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], num_classes))

    @register_model("tiny hidden layer")
    def tiny_b(num_classes, input_shape, width=4):
        return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], width), nn.ReLU(), nn.Linear(width, num_classes))
"""

WITH_BUILD_MODEL = """
    from torch import nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(5, 5)

    class Net(nn.Module):
        def __init__(self, num_classes):
            super().__init__()
            self.head = nn.Linear(5, num_classes)

    def build_model(num_classes, input_shape):
        return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], 11), nn.Linear(11, num_classes))
"""

ONE_CLASS = """
    import torch.nn as nn
    from torch.nn import Linear, Sequential

    class Net(nn.Module):
        def __init__(self, num_classes: int, input_shape: tuple[int, ...]):
            super().__init__()
            self.head = Linear(input_shape[0], num_classes)

        def forward(self, x):
            return self.head(x)

    def make_net(num_classes):
        return Sequential(Linear(6, num_classes))
"""

PROBES = """
    from torch import nn

    class Probe(nn.Module):
        '''Remembers the arguments it was built with.'''
        def __init__(self, received):
            super().__init__()
            self.received = received
            self.head = nn.Linear(2, 2)

    def only_classes(num_classes):
        return Probe({"num_classes": num_classes})

    def with_channels(num_classes, in_channels):
        return Probe({"num_classes": num_classes, "in_channels": in_channels})

    def with_kwargs(**kwargs):
        return Probe(kwargs)

    def keyword_only(*, num_classes, depth=2):
        return Probe({"num_classes": num_classes, "depth": depth})

    def sized(num_classes, width=8):
        return Probe({"width": width})

    def needs_vocab(num_classes, vocab_size):
        return Probe({"vocab_size": vocab_size})
"""


# -- the four ARCH forms --------------------------------------------------------------------
def test_a_file_registering_two_models_expands_to_both_and_each_builds(tmp_path):
    path = write(tmp_path, "two.py", TWO_REGISTERED)
    assert expand_arch(path) == [f"{path}:tiny_a", f"{path}:tiny_b"]
    entries = models_in_file(path)
    assert [(e.name, e.description, e.fits) for e in entries] == [
        ("tiny_a", "tiny linear", ("sequence",)),
        ("tiny_b", "tiny hidden layer", ("sequence", "image")),
    ]
    for canonical, n_linear in zip(expand_arch(path), (1, 2)):
        model = build_model(canonical, num_classes=3, input_shape=(6,))
        assert model(torch.randn(4, 6)).shape == (4, 3)
        assert sum(isinstance(m, nn.Linear) for m in model.modules()) == n_linear


def test_a_user_file_is_listed_apart_from_the_zoo(tmp_path):
    path = write(tmp_path, "two.py", TWO_REGISTERED)
    expand_arch(path)
    zoo_names = {entry.name for entry in list_zoo()}
    assert not {"tiny_a", "tiny_b"} & zoo_names
    assert "mlp" in zoo_names


def test_build_model_function_wins_over_the_classes_of_the_file(tmp_path):
    path = write(tmp_path, "with_build.py", WITH_BUILD_MODEL)
    assert expand_arch(path) == [f"{path}:build_model"]
    model = build_model(expand_arch(path)[0], 4, (9,))
    assert [m.out_features for m in model.modules() if isinstance(m, nn.Linear)] == [11, 4]


def test_the_single_class_defined_in_a_file_is_its_model_imported_ones_do_not_count(tmp_path):
    path = write(tmp_path, "one_class.py", ONE_CLASS)
    assert expand_arch(path) == [f"{path}:Net"]
    model = build_model(f"{path}:Net", 5, (7,))
    assert type(model).__name__ == "Net"
    assert model.head.in_features == 7 and model.head.out_features == 5


@pytest.mark.parametrize(("name", "expected_type"), [("Net", "Net"), ("make_net", "Sequential")])
def test_file_colon_name_builds_a_class_or_a_factory(tmp_path, name, expected_type):
    path = write(tmp_path, "one_class.py", ONE_CLASS)
    arch = f"{path}:{name}"
    assert expand_arch(arch) == [arch]
    model = build_model(arch, 6, (6,))
    assert type(model).__name__ == expected_type
    assert model(torch.randn(2, 6)).shape == (2, 6)


def test_a_zoo_name_stays_as_it_is_and_a_pattern_selects_several():
    assert expand_arch("cnn1d") == ["cnn1d"]
    assert expand_arch("*net_small") == ["mobilenet_small", "resnet_small"]
    assert expand_arch("torchvision:resnet1*") == [
        "torchvision:resnet18", "torchvision:resnet101", "torchvision:resnet152",
    ]


def test_torchvision_model_builds_untrained_with_our_classes(monkeypatch):
    seen: list[dict] = []
    real_get_model = torchvision.models.get_model

    def spy(name, **config):
        seen.append({"name": name, **config})
        return real_get_model(name, **config)

    monkeypatch.setattr(torchvision.models, "get_model", spy)
    with torch.device("meta"):
        model = build_model("torchvision:resnet18", num_classes=10, input_shape=(3, 32, 32))
    assert seen == [{"name": "resnet18", "weights": None, "num_classes": 10}]
    assert model.fc.out_features == 10
    assert all(p.is_meta for p in model.parameters())
    # resnet18: 11,176,512 parameters before its fc layer; fc is 512 * 10 + 10.
    assert count_parameters(model) == 11_176_512 + 512 * 10 + 10


@pytest.mark.parametrize("name", ["googlenet", "inception_v3"])
def test_googlenet_and_inception_are_built_without_auxiliary_outputs_unless_asked(name):
    with torch.device("meta"):
        plain = build_model(f"torchvision:{name}", num_classes=10, input_shape=(3, 299, 299))
        asked = build_model(f"torchvision:{name}", num_classes=10, input_shape=(3, 299, 299), kwargs={"aux_logits": True})
    assert plain.aux_logits is False and asked.aux_logits is True
    assert not any(child.startswith("aux") for child, _ in plain.named_children())


def test_a_zoo_file_given_by_path_is_the_zoo_module_not_a_second_copy():
    path = alrao_cli.zoo.mlp.__file__
    assert import_model_file(path) is alrao_cli.zoo.mlp
    assert expand_arch(path) == [f"{path}:mlp"]
    assert isinstance(build_model(f"{path}:mlp", 10, (40,)), alrao_cli.zoo.mlp.MLP)


# -- importing files -------------------------------------------------------------------------
def test_the_same_file_imported_by_two_spellings_is_one_module(tmp_path):
    path = write(tmp_path, "one_class.py", ONE_CLASS)
    (tmp_path / "sub").mkdir()
    other_spelling = tmp_path / "sub" / ".." / "one_class.py"
    module = import_model_file(path)
    assert import_model_file(other_spelling) is module
    assert sys.modules[module.__name__] is module


def test_two_files_with_the_same_name_in_different_folders_do_not_collide(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write(tmp_path / "a", "model.py", "WIDTH = 1\n")
    second = write(tmp_path / "b", "model.py", "WIDTH = 2\n")
    assert import_model_file(first).WIDTH == 1
    assert import_model_file(second).WIDTH == 2


def test_a_model_file_can_import_its_siblings_and_sys_path_is_restored(tmp_path):
    write(tmp_path, "sibling_widths.py", "HIDDEN = 13\n")
    path = write(tmp_path, "uses_sibling.py", """
        from torch import nn
        from sibling_widths import HIDDEN

        def build_model(num_classes, input_shape):
            return nn.Sequential(nn.Linear(input_shape[0], HIDDEN), nn.Linear(HIDDEN, num_classes))
    """)
    path_before = list(sys.path)
    model = build_model(path, 3, (4,))
    assert model[0].out_features == 13
    assert sys.path == path_before


def test_a_failed_import_is_not_cached_once_the_file_is_fixed_it_loads(tmp_path):
    path_before = list(sys.path)
    path = write(tmp_path, "fixme.py", "def broken(:\n")
    with pytest.raises(AlraoUserError):
        expand_arch(path)
    assert sys.path == path_before
    write(tmp_path, "fixme.py", ONE_CLASS)
    assert expand_arch(path) == [f"{path}:Net"]


# -- arguments given to factories --------------------------------------------------------------
@pytest.mark.parametrize(
    ("factory", "input_shape", "kwargs", "received"),
    [
        ("only_classes", (40,), None, {"num_classes": 3}),
        ("with_channels", (40,), None, {"num_classes": 3, "in_channels": 1}),
        ("with_channels", (2, 40), None, {"num_classes": 3, "in_channels": 2}),
        ("with_channels", (3, 8, 8), None, {"num_classes": 3, "in_channels": 3}),
        ("with_kwargs", (3, 8, 8), {"dropout": 0.5},
         {"num_classes": 3, "input_shape": (3, 8, 8), "in_channels": 3, "dropout": 0.5}),
        ("keyword_only", (40,), {"depth": 5}, {"num_classes": 3, "depth": 5}),
        ("sized", (40,), {"width": 32}, {"width": 32}),
        ("sized", (40,), None, {"width": 8}),
    ],
)
def test_a_factory_gets_exactly_the_arguments_its_signature_takes(tmp_path, factory, input_shape, kwargs, received):
    path = write(tmp_path, "probes.py", PROBES)
    model = build_model(f"{path}:{factory}", 3, input_shape, kwargs)
    assert model.received == received


def test_a_user_argument_the_factory_does_not_take_is_named_with_the_ones_it_takes(tmp_path):
    path = write(tmp_path, "probes.py", PROBES)
    with pytest.raises(AlraoUserError) as caught:
        build_model(f"{path}:sized", 3, (40,), {"depth": 3, "widht": 4})
    assert "depth, widht" in caught.value.message
    assert caught.value.hint == "it takes: width"


def test_zoo_models_take_their_own_arguments():
    narrow = build_model("mlp", 10, (40,), {"width": 8, "depth": 1})
    assert count_parameters(narrow) == (40 * 8 + 8) + (8 * 10 + 10)


# -- listing ---------------------------------------------------------------------------------------
def test_natural_key_orders_numbers_by_value():
    names = ["resnet101", "ResNet18", "resnet50", "alexnet", "resnet18_wide"]
    assert sorted(names, key=natural_key) == ["alexnet", "ResNet18", "resnet18_wide", "resnet50", "resnet101"]


def test_list_zoo_filters_with_a_pattern_and_returns_entries():
    entries = list_zoo("*net_small")
    assert [e.name for e in entries] == ["mobilenet_small", "resnet_small"]
    assert all(isinstance(e, ModelEntry) and e.description for e in entries)
    assert list_zoo("no_such_*") == []
    cnn = list_zoo("cnn1d")[0]
    assert cnn.fits_label() == "1-D [L]"


def test_torchvision_listing_holds_classifiers_only_in_natural_order():
    names = list_torchvision_models()
    assert "resnet18" in names and "vit_b_16" in names
    assert "fasterrcnn_resnet50_fpn" not in names and "fcn_resnet50" not in names
    resnets = list_torchvision_models("resnet*")
    assert resnets == ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]


def test_count_parameters_counts_trainable_shared_ones_once():
    shared = nn.Linear(3, 3)
    model = nn.Sequential(shared, nn.ReLU(), shared, nn.Linear(3, 2))
    model[3].bias.requires_grad_(False)
    assert count_parameters(model) == 12 + 6


def test_count_parameters_refuses_lazy_layers_until_a_forward_sizes_them():
    model = nn.Sequential(nn.LazyLinear(4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match=r"0\.weight, 0\.bias not initialized.*after a forward pass"):
        count_parameters(model)
    model(torch.zeros(1, 3))
    assert count_parameters(model) == (3 * 4 + 4) + (4 * 2 + 2)


def entry_fitting(*fits: str) -> ModelEntry:
    return ModelEntry("probe", "a probe", fits, nn.Identity)


@pytest.mark.parametrize(
    ("fits", "fitting", "not_fitting"),
    [
        (("sequence",), [(40,), (2, 40)], [(3, 32, 32), (1, 2, 3, 4)]),
        (("image",), [(3, 32, 32), (1, 28, 28)], [(40,), (2, 40)]),
        (("sequence", "image"), [(40,), (2, 40), (3, 32, 32)], [(1, 2, 3, 4)]),
        (("sequence", "graphs"), [(40,), (3, 32, 32), (1, 2, 3, 4)], []),  # a word of the author's own
    ],
)
def test_fits_shape_reads_the_fits_words(fits, fitting, not_fitting):
    entry = entry_fitting(*fits)
    assert all(entry.fits_shape(shape) for shape in fitting)
    assert not any(entry.fits_shape(shape) for shape in not_fitting)


def test_the_zoo_1d_cnn_is_the_one_zoo_model_that_does_not_fit_images():
    assert [entry.name for entry in list_zoo() if not entry.fits_shape((3, 32, 32))] == ["cnn1d"]
    assert all(entry.fits_shape((40,)) for entry in list_zoo())


@pytest.mark.parametrize(
    ("pattern", "suggested"),
    [("zzz", None), ("cnn", "cnn1d"), ("resnet_smal", "resnet_small"), ("lstn*", "lstm")],
)
def test_a_zoo_pattern_matching_nothing_names_the_closest_models(pattern, suggested):
    with pytest.raises(AlraoUserError, match=f"no zoo model matches '{re.escape(pattern)}'") as caught:
        find_zoo(pattern)
    hint = caught.value.hint
    assert hint.endswith("`alrao models` lists the zoo: " + ", ".join(entry.name for entry in list_zoo()))
    assert hint.startswith(f"did you mean '{suggested}'") if suggested else "did you mean" not in hint
    assert [entry.name for entry in find_zoo("*net_small")] == ["mobilenet_small", "resnet_small"]


def test_a_torchvision_pattern_matching_nothing_names_the_closest_models():
    with pytest.raises(AlraoUserError, match="no torchvision classification model matches 'resnet'") as caught:
        find_torchvision_models("resnet")
    assert "did you mean 'resnet18', 'resnet34'" in caught.value.hint
    assert find_torchvision_models("resnet1*") == ["resnet18", "resnet101", "resnet152"]


BUILD_FORBIDDEN = """
    def never_built(num_classes, width=8):
        raise RuntimeError("check_model_arguments must not build the model")

    def takes_any(num_classes, **options):
        raise RuntimeError("check_model_arguments must not build the model")
"""


def test_model_arguments_are_checked_without_building_anything(tmp_path):
    path = write(tmp_path, "forbidden.py", BUILD_FORBIDDEN)
    check_model_arguments(f"{path}:never_built", {"width": 2})
    check_model_arguments(f"{path}:takes_any", {"anything": 1})
    check_model_arguments("torchvision:resnet18", {"zero_init_residual": True})
    with pytest.raises(AlraoUserError, match="never_built does not take the model argument\\(s\\) depth") as caught:
        check_model_arguments(f"{path}:never_built", {"depth": 3})
    assert caught.value.hint == "it takes: width"
    with pytest.raises(AlraoUserError, match="num_classes cannot be set"):
        check_model_arguments("mlp", {"num_classes": 3})
    with pytest.raises(AlraoUserError, match="weights cannot be set"):
        check_model_arguments("torchvision:resnet18", {"weights": "DEFAULT"})


# -- user errors -------------------------------------------------------------------------------
ERROR_FILES = {
    "broken.py": "from torch import nn\n\ndef f(:\n    pass\n",
    "raises.py": "x = 1\nraise RuntimeError('boom at import')\n",
    "missing_dep.py": "import not_a_real_module_xyz\n",
    "no_parentheses.py": """
        from torch import nn
        from alrao_cli.sources.registry import register_model

        @register_model
        def net(num_classes):
            return nn.Linear(2, num_classes)
    """,
    "named.py": """
        from torch import nn
        WIDTH = 3

        class ConvNet(nn.Module):
            pass

        def build_model(num_classes):
            return nn.Linear(2, num_classes)
    """,
    "nothing.py": "def helper():\n    return 1\n",
    "several.py": """
        from torch import nn
        class Small(nn.Module):
            pass
        class Large(nn.Module):
            pass
    """,
    "bad_factories.py": """
        from torch import nn

        def explodes(num_classes, width=0):
            raise ValueError(f"width must be positive, got {width}")

        def not_a_module(num_classes):
            return 42
    """,
}

ERROR_CASES = [
    # (arch written relative to tmp_path, kwargs, substrings of the message, substrings of the hint)
    ("nope/missing.py", None, ["model file not found", "nope/missing.py"], ["current directory"]),
    ("broken.py", None, ["syntax error", "broken.py", "line 3"], ["fix the model file"]),
    ("raises.py", None, ["raises.py", "line 2", "RuntimeError", "boom at import"], ["python "]),
    ("missing_dep.py", None, ["missing_dep.py", "ModuleNotFoundError", "not_a_real_module_xyz"], []),
    ("no_parentheses.py", None, ["TypeError", 'register_model("'], []),
    ("named.py:ConvNt", None, ["named.py", "'ConvNt'"], ["did you mean 'ConvNet'", "build_model"]),
    ("named.py:WIDTH", None, ["WIDTH is a int"], ["class or a function"]),
    ("named.py:", None, ["no model name after the colon"], []),
    ("nothing.py", None, ["defines no model"], [":Name"]),
    ("several.py", None, ["several models", "Small, Large"], ["several.py:Small"]),
    ("resnet_smal", None, ["unknown model 'resnet_smal'"], ["resnet_small", "alrao models"]),
    ("no_zoo_*", None, ["no zoo model matches"], ["alrao models"]),
    ("torchvision:resnet19", None, ["torchvision", "'resnet19'"], ["resnet18"]),
    ("torchvision:", None, ["no model name"], ["torchvision:resnet18"]),
    ("torchvision:resnet18", {"weights": "DEFAULT"}, ["weights"], ["untrained"]),
    ("bad_factories.py:explodes", {"width": -1}, ["building", "explodes", "ValueError", "got -1"], []),
    ("bad_factories.py:not_a_module", None, ["returned a int", "nn.Module"], []),
    ("bad_factories.py:explodes", {"num_classes": 3}, ["num_classes", "cannot be set"], ["from the data"]),
    ("some/folder/model", None, ["is not a Python file"], ["torchvision:NAME"]),
    ("   ", None, ["empty architecture name"], []),
    ("cnn1d", {"image_size": 3}, ["does not take", "image_size"], ["width"]),
]


@pytest.mark.parametrize(("arch", "kwargs", "in_message", "in_hint"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_user_errors_are_one_clear_line_with_a_hint(tmp_path, monkeypatch, arch, kwargs, in_message, in_hint):
    for name, source in ERROR_FILES.items():
        write(tmp_path, name, source)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AlraoUserError) as caught:
        build_model(arch, 10, (40,), kwargs)
    error = caught.value
    assert "\n" not in error.message
    for text in in_message:
        assert text in error.message
    for text in in_hint:
        assert text in (error.hint or "")


def test_a_factory_needing_an_argument_alrao_cannot_supply_says_so(tmp_path):
    path = write(tmp_path, "probes.py", PROBES)
    with pytest.raises(AlraoUserError, match="needs the argument\\(s\\) vocab_size"):
        build_model(f"{path}:needs_vocab", 3, (40,))
    assert build_model(f"{path}:needs_vocab", 3, (40,), {"vocab_size": 7}).received == {"vocab_size": 7}


def test_building_a_file_with_several_models_asks_for_one(tmp_path):
    path = write(tmp_path, "two.py", TWO_REGISTERED)
    with pytest.raises(AlraoUserError, match="names 2 models") as caught:
        build_model(path, 3, (6,))
    assert f"{path}:tiny_a" in caught.value.hint


def test_a_syntax_error_in_a_sibling_names_the_sibling(tmp_path):
    write(tmp_path, "bad_sibling.py", "x = (\n")
    path = write(tmp_path, "imports_bad.py", "import bad_sibling\n")
    with pytest.raises(AlraoUserError, match="bad_sibling.py, line 1"):
        expand_arch(path)


def test_a_model_file_written_for_the_old_registry_path_still_registers(tmp_path):
    """Model files written before 0.2 import register_model from alrao_cli.registry."""
    from alrao_cli.sources.arch import expand_arch

    old = tmp_path / "old_style.py"
    old.write_text(
        "from torch import nn\n"
        "from alrao_cli.registry import register_model\n\n"
        "@register_model('an old-style model file')\n"
        "def tiny(num_classes, input_shape):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(40, num_classes))\n"
    )
    assert expand_arch(str(old)) == [f"{old}:tiny"]


def test_a_zoo_model_built_for_data_it_does_not_fit_says_what_it_fits_and_where_to_look():
    with pytest.raises(AlraoUserError, match="building cnn1d failed") as caught:
        build_model("cnn1d", 10, (3, 16, 16))
    assert caught.value.hint == (
        "cnn1d fits 1-D [L]; this data's examples are [3, 16, 16]: `alrao models` lists the zoo models and what each fits"
    )
    with pytest.raises(AlraoUserError) as caught:
        build_model("cnn1d", 10, (40,), {"width": -1})  # data it fits: the failure is the arguments'
    assert caught.value.hint == "check the model's code and the arguments given to it"
