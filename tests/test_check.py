"""`alrao check`: the zoo passes every item; each kind of broken model fails at its item."""

from __future__ import annotations

import json
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch
from rich.console import Console

from alrao_cli.alrao import AlraoSGD
from alrao_cli.check import CHECK_ITEMS, ArchCheck, check_architecture, failure_reason, run_checks
from alrao_cli.check_report import check_json, check_table, failure_lines, write_junit
from alrao_cli.data import DataSpec, load_data
from alrao_cli.errors import AlraoUserError
from alrao_cli.registry import list_zoo

HEADER = """\
import math
import random
import time

import torch
from torch import nn


"""

# name -> (source of a model file with one nn.Module, the item it fails, words of the reason)
BROKEN_MODELS = {
    "wrong_shape": (
        """
        class WrongShape(nn.Module):
            def __init__(self, num_classes, input_shape):
                super().__init__()
                self.head = nn.Linear(math.prod(input_shape), num_classes - 1)

            def forward(self, x):
                return self.head(x)
        """,
        "forward", "expected [16, 10]",
    ),
    "nan_forward": (
        """
        class NaNForward(nn.Module):
            def __init__(self, num_classes, input_shape):
                super().__init__()
                self.head = nn.Linear(math.prod(input_shape), num_classes)

            def forward(self, x):
                return self.head(torch.sqrt(-1 - x.abs()))
        """,
        "forward", "non-finite",
    ),
    "raises_in_forward": (
        """
        class RaisesInForward(nn.Module):
            def __init__(self, num_classes, input_shape):
                super().__init__()
                self.head = nn.Linear(math.prod(input_shape) + 1, num_classes)

            def forward(self, x):
                return self.head(x)
        """,
        "forward", "mat1 and mat2 shapes cannot be multiplied",
    ),
    "no_head": (
        """
        class NoHead(nn.Module):
            def __init__(self, num_classes, input_shape):
                super().__init__()
                self.weight = nn.Parameter(0.1 * torch.randn(math.prod(input_shape), num_classes))

            def forward(self, x):
                return x @ self.weight
        """,
        "wrap", "no output layer found",
    ),
    "softmax_after_head": (
        """
        class SoftmaxAfterHead(nn.Module):
            def __init__(self, num_classes, input_shape):
                super().__init__()
                self.head = nn.Linear(math.prod(input_shape), num_classes)

            def forward(self, x):
                return torch.log_softmax(self.head(x), dim=-1)
        """,
        "wrap", "transforms the output",
    ),
    "unused_layer": (
        """
        class UnusedLayer(nn.Module):
            def __init__(self, num_classes, input_shape):
                super().__init__()
                self.body = nn.Linear(math.prod(input_shape), 32)
                self.spare = nn.Linear(32, 32)
                self.head = nn.Linear(32, num_classes)

            def forward(self, x):
                return self.head(torch.relu(self.body(x)))
        """,
        "train", "spare.weight, spare.bias",
    ),
    "unsaved_tensor": (
        """
        class UnsavedTensor(nn.Module):
            def __init__(self, num_classes, input_shape):
                super().__init__()
                self.offset = torch.randn(math.prod(input_shape))  # not a buffer: not in the state dict
                self.head = nn.Linear(math.prod(input_shape), num_classes)

            def forward(self, x):
                return self.head(x + self.offset)
        """,
        "serialize", "outputs differ after loading",
    ),
    "own_generator": (
        """
        class OwnGenerator(nn.Module):
            def __init__(self, num_classes, input_shape):
                super().__init__()
                self.body = nn.Linear(math.prod(input_shape), 32)
                self.head = nn.Linear(32, num_classes)
                generator = torch.Generator()
                generator.seed()  # from the clock, not from torch.manual_seed
                with torch.no_grad():
                    self.body.weight.copy_(0.2 * torch.randn(self.body.weight.shape, generator=generator))

            def forward(self, x):
                return self.head(torch.relu(self.body(x)))
        """,
        "deterministic", "different outputs",
    ),
    "clock_seeded_random": (
        """
        class ClockSeededRandom(nn.Module):
            def __init__(self, num_classes, input_shape):
                super().__init__()
                self.body = nn.Linear(math.prod(input_shape), 32)
                self.head = nn.Linear(32, num_classes)
                rng = random.Random(time.perf_counter_ns())
                with torch.no_grad():
                    self.body.bias.copy_(torch.tensor([rng.gauss(0.0, 0.5) for _ in range(32)]))

            def forward(self, x):
                return self.head(torch.relu(self.body(x)))
        """,
        "deterministic", "different outputs",
    ),
}

SOUND_MODEL = """
class DropoutNormGain(nn.Module):
    '''Dropout, BatchNorm and a gain with no per-feature rule: passes, with a note.'''

    def __init__(self, num_classes, input_shape):
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(math.prod(input_shape), 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Dropout(0.3)
        )
        self.gain = nn.Parameter(torch.ones(64))
        self.head = nn.Linear(64, num_classes)

    def forward(self, x):
        return self.head(self.body(x) * self.gain)
"""


def write_model(folder: Path, name: str, source: str) -> str:
    path = folder / f"{name}.py"
    path.write_text(HEADER + textwrap.dedent(source))
    return str(path)


@pytest.fixture(scope="module")
def data():
    """MNIST-1D, 64 training examples of shape [40], 10 classes."""
    return load_data(DataSpec(subset=64))


@pytest.fixture(scope="module")
def zoo_results(data) -> list[ArchCheck]:
    return run_checks([entry.name for entry in list_zoo()], data)


@pytest.fixture(scope="module")
def model_files(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("models")
    files = {name: write_model(folder, name, source) for name, (source, _, _) in BROKEN_MODELS.items()}
    files["sound"] = write_model(folder, "sound", SOUND_MODEL)
    return files


@pytest.fixture(scope="module")
def mixed_results(data, model_files) -> dict[str, ArchCheck]:
    """Every broken model, an unknown name and two sound models, checked in one run."""
    archs = [*(model_files[name] for name in BROKEN_MODELS), "no_such_model", model_files["sound"], "mlp"]
    results = run_checks(archs, data)
    assert len(results) == len(archs)  # each ARCH names one model here
    return {arch: result for arch, result in zip(archs, results)}


def statuses(result: ArchCheck) -> list[str]:
    return [item.status for item in result.items]


def test_every_zoo_model_passes_every_item(zoo_results):
    assert [result.arch for result in zoo_results] == [entry.name for entry in list_zoo()]
    for result in zoo_results:
        assert [item.name for item in result.items] == list(CHECK_ITEMS)
        assert result.passed, failure_lines([result])
        train = result.items[CHECK_ITEMS.index("train")]
        first, last = (float(word) for word in train.detail.split()[1:4:2])
        assert last < first


@pytest.mark.parametrize("name", list(BROKEN_MODELS))
def test_a_broken_model_fails_at_its_item_and_skips_the_rest(name, mixed_results, model_files):
    _, failing_item, reason_words = BROKEN_MODELS[name]
    result = mixed_results[model_files[name]]
    at = CHECK_ITEMS.index(failing_item)
    assert not result.passed
    assert statuses(result) == ["passed"] * at + ["failed"] + ["skipped"] * (len(CHECK_ITEMS) - at - 1)
    failed = result.items[at]
    assert reason_words in failed.reason
    assert "\n" not in failed.reason
    assert all(item.seconds == 0.0 and item.reason is None for item in result.items[at + 1 :])


def test_an_error_in_model_code_says_where(mixed_results, model_files):
    path = model_files["raises_in_forward"]
    line = Path(path).read_text().splitlines().index("        return self.head(x)") + 1
    reason = mixed_results[path].items[CHECK_ITEMS.index("forward")].reason
    assert reason.endswith(f"(at {path}:{line})")


def test_an_unknown_architecture_fails_at_build(mixed_results):
    result = mixed_results["no_such_model"]
    assert statuses(result) == ["failed"] + ["skipped"] * (len(CHECK_ITEMS) - 1)
    assert "unknown model 'no_such_model'" in result.items[0].reason


def test_failures_do_not_stop_the_architectures_after_them(mixed_results, model_files):
    assert mixed_results["mlp"].passed
    sound = mixed_results[model_files["sound"]]
    assert sound.passed, failure_lines([sound])
    wrap = sound.items[CHECK_ITEMS.index("wrap")]
    assert "one rate per tensor" in wrap.detail and "gain" in wrap.detail


def test_a_file_that_cannot_be_imported_fails_at_build(data, tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("import torch\nraise ValueError('no weights here')\n")
    (result,) = run_checks([str(broken)], data)
    assert statuses(result) == ["failed"] + ["skipped"] * (len(CHECK_ITEMS) - 1)
    assert "ValueError: no weights here" in result.items[0].reason


def test_checking_leaves_the_global_random_state_alone(data):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    assert check_architecture("mlp", data, steps=2, seed=7).passed
    assert torch.equal(torch.rand(3), expected)


def test_serialize_fails_when_the_optimizer_state_is_lost(data, monkeypatch):
    monkeypatch.setattr(AlraoSGD, "load_state_dict", lambda self, state: None)
    result = check_architecture("mlp", data)
    assert statuses(result)[CHECK_ITEMS.index("serialize")] == "failed"
    assert "optimizer's state did not come through" in result.items[CHECK_ITEMS.index("serialize")].reason


def test_fewer_than_two_steps_is_a_user_error(data):
    with pytest.raises(AlraoUserError, match="at least 2"):
        run_checks(["mlp"], data, steps=1)


def test_failure_reason_is_type_and_message_on_one_line():
    assert failure_reason(KeyError("a\n  b")) == "KeyError: 'a\\n b'"
    assert failure_reason(AlraoUserError("bad input", hint="fix it")) == "bad input (fix it)"


def test_failure_lines_name_arch_item_and_reason(mixed_results, model_files):
    lines = failure_lines(list(mixed_results.values()))
    assert len(lines) == len(BROKEN_MODELS) + 1  # one failed item per failing architecture
    assert f"{model_files['unused_layer']}:UnusedLayer: train: no gradient reached 2" in "\n".join(lines)
    assert any(line.startswith("no_such_model: build: unknown model") for line in lines)


def test_junit_xml_counts_tests_failures_and_skips(mixed_results, tmp_path):
    results = list(mixed_results.values())
    path = tmp_path / "reports" / "nested" / "alrao.xml"
    write_junit(path, results)
    assert [p.name for p in path.parent.iterdir()] == ["alrao.xml"]  # no temporary file left
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    failed = len(BROKEN_MODELS) + 1
    skipped = sum(status == "skipped" for result in results for status in statuses(result))
    assert suite.get("name") == "alrao check"
    assert int(suite.get("tests")) == len(results) * len(CHECK_ITEMS)
    assert int(suite.get("failures")) == failed
    assert int(suite.get("skipped")) == skipped
    cases = suite.findall("testcase")
    assert len(cases) == len(results) * len(CHECK_ITEMS)
    assert len([case for case in cases if case.find("failure") is not None]) == failed
    assert len([case for case in cases if case.find("skipped") is not None]) == skipped
    unknown = [case for case in cases if case.get("classname") == "no_such_model"]
    assert [case.get("name") for case in unknown] == list(CHECK_ITEMS)
    assert "unknown model" in unknown[0].find("failure").get("message")


def test_check_json_is_stable_plain_data(mixed_results):
    results = list(mixed_results.values())
    report = json.loads(json.dumps(check_json(results, 1.5)))
    assert report["passed"] is False and report["seconds"] == 1.5
    assert [entry["arch"] for entry in report["architectures"]] == [result.arch for result in results]
    item = report["architectures"][0]["items"][0]
    assert set(item) == {"name", "status", "seconds", "reason", "detail"}
    assert report["architectures"][-1]["passed"] is True


def test_check_table_marks_each_item_and_gives_the_total_time(mixed_results):
    results = list(mixed_results.values())
    console = Console(record=True, width=250, color_system=None)
    console.print(check_table(results, 12.34))
    text = console.export_text()
    assert "12.3 s" in text and f"{len(results)} architecture(s)" in text
    assert text.count("✗") == len(BROKEN_MODELS) + 1
    assert "no_such_model" in text and all(name in text for name in CHECK_ITEMS)
