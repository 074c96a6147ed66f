"""Configuration: precedence, spelling, one clear error per bad value, and round trips."""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import yaml

from alrao_cli.config.schema import DEFAULT_EPOCHS, DEFAULT_GRID, StudyConfig, build_config, config_to_dict, parse_grid
from alrao_cli.config.yaml_io import dump_config_yaml, example_config_yaml, load_config_file
from alrao_cli.errors import AlraoUserError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "screen.yaml"
    path.write_text(text)
    return path


def test_no_file_and_no_flags_give_the_defaults():
    assert build_config(None, {}) == StudyConfig()
    assert StudyConfig().grid == DEFAULT_GRID


@pytest.mark.parametrize(
    ("name", "file_value", "flag_value"),
    [
        ("epochs", 3, 7),
        ("lr_min", 1e-4, 1e-3),
        ("data", "cifar10", "mnist"),
        ("plots", False, True),
        ("archs", ["mlp"], ["cnn1d", "gru"]),
        ("device", "cpu", "cuda:1"),
    ],
)
def test_flags_override_the_file_which_overrides_the_defaults(name, file_value, flag_value):
    from_file = build_config({name: file_value}, {})
    from_both = build_config({name: file_value}, {name: flag_value})
    expected_file = tuple(file_value) if isinstance(file_value, list) else file_value
    expected_flag = tuple(flag_value) if isinstance(flag_value, list) else flag_value
    assert getattr(from_file, name) == expected_file != getattr(StudyConfig(), name)
    assert getattr(from_both, name) == expected_flag


def test_keys_from_the_file_and_flags_combine():
    config = build_config({"seed": 3, "copies": 5}, {"seed": 4, "batch_size": 8})
    assert (config.seed, config.copies, config.batch_size) == (4, 5, 8)


def test_dashes_and_underscores_name_the_same_option():
    config = build_config({"lr-min": 1e-4, "batch-size": 64, "fail-fast": True}, {"time-budget": 30})
    assert (config.lr_min, config.batch_size, config.fail_fast, config.time_budget) == (1e-4, 64, True, 30.0)


def test_a_key_spelled_both_ways_is_an_error():
    with pytest.raises(AlraoUserError, match="'lr-min'.*'lr_min'"):
        build_config({"lr-min": 1e-4, "lr_min": 1e-3}, {})


@pytest.mark.parametrize("key", ["arch", "archs", "architectures"])
@pytest.mark.parametrize(("value", "expected"), [("mlp", ("mlp",)), (["mlp", "x.py:Net"], ("mlp", "x.py:Net"))])
def test_architectures_have_three_names_and_take_one_or_many(key, value, expected):
    assert build_config({key: value}, {}).archs == expected


def test_repeated_architectures_and_baselines_run_once():
    config = build_config({"archs": ["mlp", "gru", "mlp"], "baselines": "adam, sgd-grid,adam"}, {})
    assert config.archs == ("mlp", "gru")
    assert config.baselines == ("adam", "sgd-grid")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("sgd-grid,adam", ("sgd-grid", "adam")),
        (["adam"], ("adam",)),
        (["sgd-grid,adam"], ("sgd-grid", "adam")),
        ([], ()),
    ],
)
def test_baselines_are_a_list_or_comma_separated_text(value, expected):
    assert build_config({"baselines": value}, {}).baselines == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1e-3,1e-2", (1e-3, 1e-2)), (["1e-3", 0.1, 1], (1e-3, 0.1, 1.0)), ("1e-4:1:5", (1e-4, 1e-3, 1e-2, 0.1, 1.0))],
)
def test_the_grid_is_a_list_or_grid_text(value, expected):
    assert build_config({"grid": value}, {}).grid == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [("lr_min", "1e-3", 1e-3), ("lr_max", 5, 5.0), ("theta", 1, 1.0), ("time_budget", "90", 90.0)],
)
def test_numbers_accept_ints_and_numeric_text(name, raw, expected):
    value = getattr(build_config({name: raw}, {}), name)
    assert value == expected and isinstance(value, float)


def test_yaml_exponents_without_a_dot_still_load_as_numbers(tmp_path):
    """YAML 1.1 reads ``1e-3`` as text; it must still mean 0.001."""
    values = load_config_file(write(tmp_path, "lr_min: 1e-3\nlr-max: 1e+1\n"))
    assert values["lr_min"] == "1e-3"
    config = build_config(values, {})
    assert (config.lr_min, config.lr_max) == (1e-3, 10.0)


def test_a_budget_flag_replaces_the_files_budget():
    config = build_config({"epochs": 5}, {"steps": 100})
    assert (config.epochs, config.steps, config.budget_epochs) == (None, 100, None)


@pytest.mark.parametrize(
    ("file_values", "overrides", "budget_epochs"),
    [
        ({}, {}, DEFAULT_EPOCHS),
        ({"epochs": 4}, {}, 4),
        ({"time_budget": 60}, {}, None),
        ({"epochs": 4}, {"epochs": 2}, 2),
    ],
)
def test_budget_epochs_falls_back_to_the_default_only_without_any_budget(file_values, overrides, budget_epochs):
    assert build_config(file_values, overrides).budget_epochs == budget_epochs


@pytest.mark.parametrize(
    ("file_values", "overrides", "named"),
    [
        ({}, {"epochs": 2, "steps": 10}, ["--epochs", "--steps"]),
        ({}, {"steps": 10, "time_budget": 5.0}, ["--steps", "--time-budget"]),
        ({"epochs": 2, "time-budget": 5}, {}, ["'epochs'", "'time-budget'"]),
        ({"steps": 2, "epochs": 3}, {"seed": 1}, ["'epochs'", "'steps'"]),
    ],
)
def test_two_budgets_from_one_place_are_an_error_naming_both(file_values, overrides, named):
    with pytest.raises(AlraoUserError, match="budget") as caught:
        build_config(file_values, overrides)
    assert all(name in caught.value.message for name in named)
    assert "only one" in caught.value.hint


BAD_VALUES = [
    # (option, bad value, what the message must say)
    ("lr_min", 0, "positive"),
    ("lr_min", -1e-3, "positive"),
    ("lr_min", "fast", "a number"),
    ("lr_min", True, "a number"),
    ("lr_max", float("inf"), "finite"),
    ("lr_max", "nan", "finite"),
    ("copies", 0, "at least 1"),
    ("copies", 2.5, "an integer"),
    ("copies", True, "an integer"),
    ("copies", "10", "an integer"),
    ("theta", 1.5, "between 0 and 1"),
    ("theta", -0.1, "between 0 and 1"),
    ("batch_size", 0, "at least 1"),
    ("batch_size", None, "an integer"),
    ("epochs", 0, "at least 1"),
    ("steps", -5, "at least 1"),
    ("time_budget", 0, "positive"),
    ("seeds", 0, "at least 1"),
    ("seed", -1, "at least 0"),
    ("seed", 2**70, "at most"),
    ("seeds", 10**8, "at most 1000"),
    ("grid", "1e-5:10:100000000", "at most 1000"),
    ("subset", 0, "at least 1"),
    ("val_fraction", 0, "strictly between 0 and 1"),
    ("val_fraction", 1.0, "strictly between 0 and 1"),
    ("val_fraction", "a tenth", "a number"),
    ("loader_workers", -1, "at least 0"),
    ("checkpoint_every", 0, "at least 1"),
    ("momentum", 1.0, "below 1"),
    ("momentum", -0.5, "at least 0"),
    ("weight_decay", -1e-4, "zero or positive"),
    ("grid", [], "empty"),
    ("grid", [1e-3, -1e-2], "positive"),
    ("grid", [1e-3, 0], "positive"),
    ("grid", [1e-3, "x"], "a number"),
    ("grid", [0.1, 0.1], "twice"),
    ("grid", 0.1, "a list"),
    ("grid", "1e-3;1e-2", "not a number"),
    ("baselines", 3, "a baseline"),
    ("device", "gpu", "device"),
    ("device", "cuda:x", "device"),
    ("device", "CPU", "device"),
    ("device", 0, "device"),
    ("download", "yes", "true or false"),
    ("plots", 1, "true or false"),
    ("data", "", "non-empty text"),
    ("data", 10, "non-empty text"),
    ("out", ["a"], "non-empty text"),
    ("archs", ["mlp", 3], "an architecture"),
    ("archs", ["mlp", " "], "empty entry"),
    ("archs", {"mlp": 1}, "an architecture"),
    ("model_kwargs", ["mlp"], "a mapping"),
    ("model_kwargs", {"mlp": 256}, "a mapping of keyword arguments"),
    ("model_kwargs", {"mlp": {"hidden-size": 2}}, "not a keyword argument name"),
    ("model_kwargs", {1: {"width": 2}}, "an architecture as text"),
]


@pytest.mark.parametrize(("name", "value", "says"), BAD_VALUES)
def test_a_bad_value_in_the_file_names_its_config_key(name, value, says):
    key = name.replace("_", "-") if name in {"batch_size", "time_budget"} else name
    with pytest.raises(AlraoUserError) as caught:
        build_config({key: value}, {})
    assert f"config key '{key}'" in caught.value.message
    assert says in caught.value.message
    assert caught.value.hint, "every user error says how to fix it"


FLAGS = {"archs": "the ARCH arguments", "baselines": "--baseline", "model_kwargs": "model_kwargs"}


@pytest.mark.parametrize(("name", "value", "says"), BAD_VALUES)
def test_a_bad_flag_is_named_as_the_flag(name, value, says):
    with pytest.raises(AlraoUserError) as caught:
        build_config({}, {name: value})
    flag = FLAGS.get(name, "--" + name.replace("_", "-"))
    assert caught.value.message.startswith(flag)
    assert says in caught.value.message


def test_a_type_error_shows_the_value_given_and_an_example():
    with pytest.raises(AlraoUserError) as caught:
        build_config({"copies": "ten"}, {})
    assert "'ten'" in caught.value.message and "integer" in caught.value.message
    assert caught.value.hint == "for example: 10"


def test_an_empty_yaml_value_suggests_removing_the_key():
    with pytest.raises(AlraoUserError) as caught:
        build_config({"data": None}, {})
    assert "null" in caught.value.message and "remove the key" in caught.value.hint


@pytest.mark.parametrize("written", ["sgd_grid", "adamw"], ids=["misspelt", "unknown"])
def test_an_unknown_baseline_is_refused_when_planning_with_the_closest_name(written):
    """The config knows no methods; the plan checks baseline names against the registry."""
    from alrao_cli.study.plan import plan_study

    config = build_config({}, {"archs": ["mlp"], "baselines": ["sgd-grid", written], "device": "cpu"})
    with pytest.raises(AlraoUserError, match=f"unknown baseline '{written}'") as caught:
        plan_study(config, "screen")
    assert "did you mean" in caught.value.hint and "the baselines are sgd-grid, adam" in caught.value.hint


@pytest.mark.parametrize(
    ("file_values", "overrides", "named"),
    [
        ({}, {"lr_min": 1e-2, "lr_max": 1e-3}, ["--lr-min", "--lr-max"]),
        ({"lr_min": 1e-2}, {"lr_max": 1e-2}, ["config key 'lr_min'", "--lr-max"]),
        ({"lr-min": 20}, {}, ["config key 'lr-min'", "the default lr_max"]),
        ({}, {"lr_max": 1e-6}, ["the default lr_min", "--lr-max"]),
    ],
)
def test_lr_min_must_be_below_lr_max_wherever_each_came_from(file_values, overrides, named):
    with pytest.raises(AlraoUserError, match="must be below") as caught:
        build_config(file_values, overrides)
    assert re.search(f"{re.escape(named[0])}.*must be below {re.escape(named[1])}", caught.value.message)


@pytest.mark.parametrize(
    ("key", "closest"),
    [("lr-mn", "lr_min"), ("epoch", "epochs"), ("batchsize", "batch_size"), ("archz", "archs"), ("devise", "device")],
)
def test_an_unknown_key_names_itself_and_the_closest_valid_key(key, closest):
    with pytest.raises(AlraoUserError) as caught:
        build_config({key: 1}, {})
    assert f"unknown config key '{key}'" in caught.value.message
    assert f"did you mean '{closest}'" in caught.value.hint


@pytest.mark.parametrize("key", [True, None, 3])
def test_a_key_that_is_not_text_is_an_error(key):
    """YAML reads ``on:`` or ``yes:`` as a boolean key."""
    with pytest.raises(AlraoUserError, match="not an option name"):
        build_config({key: 1}, {})


def test_an_unknown_override_is_an_error_too():
    with pytest.raises(AlraoUserError, match="unknown option 'colour'"):
        build_config({}, {"colour": "red"})


def test_model_kwargs_are_copied_so_later_edits_do_not_leak_in():
    kwargs = {"mlp": {"width": 256, "sizes": [1, 2]}}
    config = build_config({"model_kwargs": kwargs}, {})
    kwargs["mlp"]["sizes"].append(3)
    assert config.model_kwargs == {"mlp": {"width": 256, "sizes": [1, 2]}}


def test_paths_are_accepted_as_text():
    assert build_config({}, {"out": Path("runs/a"), "data_dir": Path("/data")}).out == "runs/a"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.1", (0.1,)),
        ("1e-5,1e-4,0.1", (1e-5, 1e-4, 0.1)),
        (" 1e-3 , 1 , 10 ", (1e-3, 1.0, 10.0)),
    ],
)
def test_parse_grid_reads_a_comma_list(text, expected):
    assert parse_grid(text) == expected


@pytest.mark.parametrize(
    ("low", "high", "count"), [(1e-5, 10, 7), (1e-4, 1, 5), (0.003, 0.3, 4), (1e-6, 2.5, 11), (1, 2, 2)]
)
def test_parse_grid_reads_log_spaced_ranges_like_numpy(low, high, count):
    grid = parse_grid(f"{low}:{high}:{count}")
    assert len(grid) == count
    assert (grid[0], grid[-1]) == (low, high)
    np.testing.assert_allclose(grid, np.logspace(np.log10(low), np.log10(high), count), rtol=1e-10)


def test_the_decade_range_is_the_default_grid_exactly():
    assert parse_grid("1e-5:10:7") == DEFAULT_GRID


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("1e-3,", "empty entry"),
        ("1e-3,,1e-2", "empty entry"),
        ("1e-3,fast", "'fast'"),
        ("1e-3;1e-2", "not a number"),
        ("0,0.1", "positive"),
        ("-1e-3", "positive"),
        ("inf", "finite"),
        ("1e-5:10", "LOW:HIGH:COUNT"),
        ("1e-5:10:7:2", "LOW:HIGH:COUNT"),
        ("1e-5:10:1", "at least 2"),
        ("1e-5:10:2.5", "whole number"),
        ("1e-5:10:x", "whole number"),
        ("10:1e-5:7", "LOW < HIGH"),
        ("0:1:3", "LOW < HIGH"),
        ("1e-3:1e-3:3", "LOW < HIGH"),
        ("a:1:3", "not a number"),
    ],
)
def test_parse_grid_rejects_bad_text_and_shows_the_expected_form(text, says):
    with pytest.raises(AlraoUserError) as caught:
        parse_grid(text)
    assert caught.value.message.startswith("--grid")
    assert says in caught.value.message
    assert "1e-5:10:7" in caught.value.hint


def test_parse_grid_rejects_a_repeated_rate():
    with pytest.raises(AlraoUserError, match="--grid lists 0.1 twice"):
        parse_grid("0.1,1,0.1")


def test_load_config_file_reads_a_mapping(tmp_path):
    assert load_config_file(write(tmp_path, "archs: [mlp]\nepochs: 2\n")) == {"archs": ["mlp"], "epochs": 2}


def test_an_empty_file_is_an_empty_config(tmp_path):
    assert load_config_file(write(tmp_path, "# nothing yet\n")) == {}


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("epochs: 2\nlr_min: [1e-3\nseed: 1\n", 3),
        ("epochs: 2\n  seed: 1\n", 2),
        ("epochs: 2\ndata: 'mnist1d\n", 3),
        ("data: mnist1d\nepochs: 2: 3\n", 2),
    ],
)
def test_invalid_yaml_reports_the_file_and_line(tmp_path, text, line):
    path = write(tmp_path, text)
    with pytest.raises(AlraoUserError) as caught:
        load_config_file(path)
    assert str(path) in caught.value.message
    assert f"line {line}," in caught.value.message


def test_a_key_given_twice_in_the_file_is_an_error_at_its_line(tmp_path):
    path = write(tmp_path, "epochs: 2\nseed: 1\nepochs: 3\n")
    with pytest.raises(AlraoUserError, match="line 3.*'epochs' twice") as caught:
        load_config_file(path)
    assert caught.value.hint == "keep only one of them"


def test_yaml_merge_keys_are_not_mistaken_for_repeats(tmp_path):
    text = "base: &base {width: 8}\nover:\n  <<: *base\n  width: 16\n"
    assert load_config_file(write(tmp_path, text))["over"] == {"width": 16}


@pytest.mark.parametrize("text", ["- mlp\n- cnn1d\n", "just text\n", "42\n"])
def test_a_top_level_that_is_not_a_mapping_is_an_error(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(AlraoUserError, match="mapping") as caught:
        load_config_file(path)
    assert str(path) in caught.value.message


def test_a_missing_config_file_is_an_error_with_a_way_out(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(AlraoUserError, match="not found") as caught:
        load_config_file(missing)
    assert str(missing) in caught.value.message and "alrao init" in caught.value.hint


def test_a_folder_is_not_a_config_file(tmp_path):
    with pytest.raises(AlraoUserError, match="is a folder"):
        load_config_file(tmp_path)


def test_a_binary_file_is_a_user_error(tmp_path):
    path = tmp_path / "weights.yaml"
    path.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(AlraoUserError, match="could not be read"):
        load_config_file(path)


NON_DEFAULT = StudyConfig(
    archs=("mlp", "models.py:Net", "torchvision:resnet18"),
    data="imagefolder:/data/birds",
    data_dir="/data",
    download=True,
    subset=500,
    augment=True,
    time_budget=12.5,
    batch_size=64,
    lr_min=1e-6,
    lr_max=3.0,
    copies=4,
    theta=0.99,
    momentum=0.9,
    weight_decay=5e-4,
    seed=7,
    seeds=3,
    device="cuda:1",
    loader_workers=2,
    out="runs/today",
    baselines=("sgd-grid", "adam"),
    grid=parse_grid("1e-4:1:9"),
    adam=False,
    plots=False,
    fail_fast=True,
    checkpoint_every=200,
    model_kwargs={"mlp": {"width": 256, "depth": 2}, "models.py:Net": {"dropout": 0.1, "sizes": [3, 4]}},
)


@pytest.mark.parametrize("config", [StudyConfig(), NON_DEFAULT, StudyConfig(epochs=3), StudyConfig(steps=40)])
def test_a_dumped_config_loads_back_equal(tmp_path, config):
    text = dump_config_yaml(config)
    assert build_config(yaml.safe_load(text), {}) == config
    assert build_config(load_config_file(write(tmp_path, text)), {}) == config


def test_config_to_dict_is_plain_json_data():
    data = config_to_dict(NON_DEFAULT)
    assert json.loads(json.dumps(data)) == data
    assert data["archs"] == list(NON_DEFAULT.archs) and data["grid"] == list(NON_DEFAULT.grid)
    assert list(data) == [option.name for option in fields(StudyConfig)]


def test_the_example_config_loads_back_to_the_defaults(tmp_path):
    text = example_config_yaml()
    assert build_config(yaml.safe_load(text), {}) == StudyConfig()
    assert build_config(load_config_file(write(tmp_path, text)), {}) == StudyConfig()


def test_the_example_config_shows_every_option_with_a_comment_above_it():
    lines = example_config_yaml().splitlines()
    for option in fields(StudyConfig):
        (index,) = [i for i, line in enumerate(lines) if line.startswith(f"{option.name}:")]
        assert lines[index - 1].startswith("# ") and len(lines[index - 1]) > 10


def test_the_commented_model_kwargs_example_works_when_uncommented():
    example = [line[2:] for line in example_config_yaml().splitlines() if line.startswith("#   ")]
    values = yaml.safe_load("\n".join(line[2:] for line in example))
    config = build_config(values, {})
    assert config.model_kwargs == {"mlp": {"width": 256, "depth": 2}, "my_models.py:Net": {"dropout": 0.1}}


def test_the_configuration_reference_documents_every_key_once():
    reference = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()
    documented = re.findall(r"^\| `(\w+)` \|", reference, flags=re.MULTILINE)
    keys = [option.name for option in fields(StudyConfig)]
    assert sorted(set(documented) & set(keys)) == sorted(keys)
    assert all(documented.count(key) == 1 for key in keys)



@pytest.mark.parametrize(
    "value", [__import__("datetime").date(2020, 1, 1), b"binary", {"nested": object()}], ids=["date", "binary", "object"]
)
def test_model_kwargs_must_be_plain_yaml_values(value):
    with pytest.raises(AlraoUserError, match="not a number, text, true/false or a list"):
        build_config({"model_kwargs": {"mlp": {"width": value}}}, {})
