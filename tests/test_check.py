"""`alrao check`: the zoo passes every item; each kind of broken model fails at its item."""

from __future__ import annotations

import json
import re
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch
from rich.console import Console
from support import HEAD_FIRST_MODEL, NEEDS_WIDTH_MODEL

from alrao_cli.alrao import AlraoSGD
from alrao_cli.data.load import load_data
from alrao_cli.data.spec import DataSpec
from alrao_cli.errors import AlraoUserError
from alrao_cli.report.check import (
    check_json,
    check_junit_path,
    check_table,
    failure_lines,
    message_lines,
    note_lines,
    write_junit,
)
from alrao_cli.sources.registry import list_zoo
from alrao_cli.study import check as check_module
from alrao_cli.study import checkpoint as checkpoint_module
from alrao_cli.study.attempt import failure_line
from alrao_cli.study.check import (
    CHECK_ITEMS,
    ArchCheck,
    check_architecture,
    failure_with_location,
    run_checks,
    torch_threads,
)
from alrao_cli.study.checkpoint import CHECKPOINT_FORMAT, Checkpoint, UnusableCheckpoint
from alrao_cli.study.methods.alrao import AlraoLearner, AlraoSGDMethod
from alrao_cli.study.methods.base import TorchOptimizerLearner

HEADER = """\
import math
import random
import time

import numpy as np
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
    "numpy_noise_in_forward": (
        # Random at every call, in eval mode too: the serialize controls see it, so the
        # verdict (and the right reason) comes from the deterministic item.
        """
        class NumpyNoiseInForward(nn.Module):
            def __init__(self, num_classes, input_shape):
                super().__init__()
                self.body = nn.Linear(math.prod(input_shape), 32)
                self.head = nn.Linear(32, num_classes)

            def forward(self, x):
                noise = torch.from_numpy(np.random.normal(0.0, 0.1, tuple(x.shape)).astype("float32"))
                return self.head(torch.relu(self.body(x + noise)))
        """,
        "deterministic", "different outputs",
    ),
    "random_in_training": (
        # Random only in training mode: eval outputs agree, the steps do not.
        """
        class RandomInTraining(nn.Module):
            def __init__(self, num_classes, input_shape):
                super().__init__()
                self.body = nn.Linear(math.prod(input_shape), 32)
                self.head = nn.Linear(32, num_classes)

            def forward(self, x):
                features = torch.relu(self.body(x))
                if self.training:
                    features = features * (1.0 + 0.1 * random.random())
                return self.head(features)
        """,
        "deterministic", "different losses at step 1",
    ),
    "loss_goes_up": (
        # The pre-classifier's gradient is reversed and scaled: its steps raise the loss
        # faster than the copies (trained on detached features) can lower it.
        """
        class _Reversed(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return x.view_as(x)

            @staticmethod
            def backward(ctx, grad):
                return -300.0 * grad


        class LossGoesUp(nn.Module):
            def __init__(self, num_classes, input_shape):
                super().__init__()
                self.body = nn.Linear(math.prod(input_shape), 32)
                self.head = nn.Linear(32, num_classes)

            def forward(self, x):
                return self.head(_Reversed.apply(torch.relu(self.body(x))))
        """,
        "train", "did not go down in 5 steps",
    ),
    "nan_in_training": (
        """
        class NaNInTraining(nn.Module):
            def __init__(self, num_classes, input_shape):
                super().__init__()
                self.head = nn.Linear(math.prod(input_shape), num_classes)

            def forward(self, x):
                return self.head(x * math.nan if self.training else x)
        """,
        "train", "at step 1 of 5",
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

FROZEN_MODEL = """
class FrozenBody(nn.Module):
    '''A frozen feature extractor: no gradient is expected there, so it passes.'''

    def __init__(self, num_classes, input_shape):
        super().__init__()
        self.body = nn.Linear(math.prod(input_shape), 32)
        self.body.requires_grad_(False)
        self.head = nn.Linear(32, num_classes)

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))
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
    files["frozen"] = write_model(folder, "frozen", FROZEN_MODEL)
    return files


@pytest.fixture(scope="module")
def mixed_results(data, model_files) -> dict[str, ArchCheck]:
    """Every broken model, an unknown name and three sound models, checked in one run."""
    archs = [
        *(model_files[name] for name in BROKEN_MODELS), "no_such_model",
        model_files["sound"], model_files["frozen"], "mlp",
    ]
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


def test_a_diverging_model_says_at_which_step(mixed_results, model_files):
    reason = mixed_results[model_files["nan_in_training"]].items[CHECK_ITEMS.index("train")].reason
    assert re.fullmatch(r"the loss is not finite \((nan|inf)\) at step 1 of 5", reason), reason


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
    assert wrap.note == "one rate per tensor (no per-feature rule) for: gain"


def test_fallback_parameters_make_a_note_line_and_only_they(mixed_results, model_files):
    results = list(mixed_results.values())
    notes = [line for line in note_lines(results) if ": wrap: " in line]
    assert notes == [f"{model_files['sound']}:DropoutNormGain: wrap: one rate per tensor (no per-feature rule) for: gain"]
    texts = [text.plain for text in message_lines(results)]
    first_failure = min(index for index, text in enumerate(texts) if text.startswith("✗ "))
    assert texts.index(f"note: {notes[0]}") < first_failure


def test_frozen_parameters_pass_and_are_named(mixed_results, model_files):
    frozen = mixed_results[model_files["frozen"]]
    assert frozen.passed, failure_lines([frozen])
    train = frozen.items[CHECK_ITEMS.index("train")]
    assert train.detail.endswith("; frozen, not checked: body.weight, body.bias")
    assert "frozen" not in mixed_results["mlp"].items[CHECK_ITEMS.index("train")].detail


@pytest.mark.parametrize("name", ["numpy_noise_in_forward", "random_in_training"])
def test_a_random_model_is_not_blamed_on_serialization(name, mixed_results, model_files):
    serialize = mixed_results[model_files[name]].items[CHECK_ITEMS.index("serialize")]
    assert serialize.status == "passed"
    assert serialize.note == "not compared: the model is not deterministic (see deterministic)"


def test_a_deterministic_model_gets_no_serialize_note(mixed_results, model_files):
    for arch in ("mlp", model_files["sound"], model_files["frozen"]):
        assert mixed_results[arch].items[CHECK_ITEMS.index("serialize")].note is None


def test_a_named_head_and_model_kwargs_reach_the_model(data, tmp_path):
    head_first = write_model(tmp_path, "head_first", HEAD_FIRST_MODEL)
    needs_width = write_model(tmp_path, "needs_width", NEEDS_WIDTH_MODEL)
    (found,) = run_checks([head_first], data)  # the probe batch finds the Linear whose output is returned
    assert found.passed, failure_lines([found])
    (misnamed,) = run_checks([head_first], data, heads={"*": "body"})
    assert statuses(misnamed)[CHECK_ITEMS.index("wrap")] == "failed"
    (named,) = run_checks([head_first], data, heads={"*": "head"})
    assert named.passed, failure_lines([named])
    (missing,) = run_checks([needs_width], data)
    assert statuses(missing)[0] == "failed" and "width" in missing.items[0].reason
    # keyed by the ARCH as given, or by the model it expands to, as in a screen's config
    for key, width in ((needs_width, 24), (f"{needs_width}:NeedsWidth", 8)):
        (given,) = run_checks([needs_width], data, model_kwargs={key: {"width": width}})
        assert given.passed, failure_lines([given])
        assert given.items[0].detail == f"NeedsWidth, {40 * width + width + width * 10 + 10:,} parameters"


LAZY_MODEL = """
from torch import nn


def build_model(num_classes, input_shape):
    return nn.Sequential(nn.Flatten(), nn.LazyLinear(12), nn.ReLU(), nn.LazyLinear(num_classes))
"""


def test_a_model_with_lazy_layers_passes_and_is_counted_once_sized(data, tmp_path):
    (result,) = run_checks([write_model(tmp_path, "lazy", LAZY_MODEL)], data)
    assert result.passed, failure_lines([result])
    build, forward = result.items[:2]
    assert "parameters counted after the forward" in build.detail
    assert forward.detail.endswith(f"{40 * 12 + 12 + 12 * 10 + 10:,} parameters")


def test_the_junit_path_is_checked_before_anything_runs(tmp_path):
    check_junit_path(tmp_path / "new" / "deeper" / "alrao.xml")  # missing folders are fine
    assert (tmp_path / "new" / "deeper").is_dir() and not list((tmp_path / "new" / "deeper").iterdir())
    (tmp_path / "file").write_text("")
    for path, words in (
        (tmp_path, "is a folder"),
        (tmp_path / "file" / "alrao.xml", "is a file, not a folder"),
        ("/proc/nope/alrao.xml", "cannot write the JUnit report /proc/nope/alrao.xml"),
    ):
        with pytest.raises(AlraoUserError, match="JUnit report") as caught:
            check_junit_path(path)
        assert words in caught.value.message


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


SERIALIZE = CHECK_ITEMS.index("serialize")


def test_serialize_writes_and_reads_the_run_checkpoint(data, monkeypatch):
    written = []
    save = Checkpoint.save

    def keep_a_copy(checkpoint, learner, position, device=None):
        save(checkpoint, learner, position, device)
        written.append(torch.load(checkpoint.path, weights_only=True))

    monkeypatch.setattr(Checkpoint, "save", keep_a_copy)
    result = check_architecture("mlp", data)
    assert result.passed, failure_lines([result])
    (state,) = written
    assert state["format"] == CHECKPOINT_FORMAT and state["key"] == "mlp"
    assert {"learner", "rng", "python_rng", "numpy_rng", "history", "step"} <= set(state)
    assert set(state["learner"]) == {"model", "optimizer"}  # the screen's learner's own state dict
    assert result.items[SERIALIZE].detail.endswith(" of state")


def test_serialize_fails_when_the_run_checkpoint_cannot_be_written(data, monkeypatch):
    def full_disk(path, write, run_dir=None):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint_module, "write_atomic_with", full_disk)
    result = check_architecture("mlp", data)
    assert statuses(result)[SERIALIZE:] == ["failed", "skipped"]
    assert result.items[SERIALIZE].reason.startswith("OSError: [Errno 28] No space left on device")


def test_serialize_fails_when_the_run_checkpoint_does_not_load_back(data, monkeypatch):
    def damaged(state):
        raise UnusableCheckpoint("it is damaged (KeyError: 'epoch')")

    monkeypatch.setattr(checkpoint_module, "_position", damaged)
    result = check_architecture("mlp", data)
    assert statuses(result)[SERIALIZE] == "failed"
    assert result.items[SERIALIZE].reason == (
        "the run checkpoint of the trained model does not load back: it is damaged (KeyError: 'epoch')"
    )


def test_wrap_and_serialize_go_through_the_screens_alrao_learner_and_train_through_its_adam(data, monkeypatch):
    wrapped, alrao_steps, adam_steps = [], [], []
    learner, train_step = AlraoSGDMethod.learner, AlraoLearner.train_step
    adam_step = TorchOptimizerLearner.train_step
    monkeypatch.setattr(AlraoSGDMethod, "learner", lambda *args: wrapped.append(1) or learner(*args))
    monkeypatch.setattr(AlraoLearner, "train_step", lambda *args: alrao_steps.append(1) or train_step(*args))
    monkeypatch.setattr(TorchOptimizerLearner, "train_step", lambda *args: adam_steps.append(1) or adam_step(*args))
    assert check_architecture("mlp", data, steps=3).passed
    # wrap, two reloads (serialize), the second run (deterministic); serialize steps the
    # original twice and each reload once; the train item's three steps run twice (deterministic)
    assert (len(wrapped), len(alrao_steps), len(adam_steps)) == (4, 4, 3 + 3)


def test_checks_run_on_one_thread_and_give_the_count_back(data, monkeypatch):
    seen = []

    def record(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return ArchCheck("mlp", ())

    monkeypatch.setattr(check_module, "check_architecture", record)
    threads = torch.get_num_threads()
    run_checks(["mlp", "cnn1d"], data)
    assert seen == [1, 1] and torch.get_num_threads() == threads
    with pytest.raises(RuntimeError), torch_threads(1):
        raise RuntimeError("a failing block gives the count back too")
    assert torch.get_num_threads() == threads


def test_fewer_than_two_steps_is_a_user_error(data):
    with pytest.raises(AlraoUserError, match="at least 2"):
        run_checks(["mlp"], data, steps=1)


def test_failure_reason_is_type_and_message_on_one_line():
    assert failure_with_location(KeyError("a\n  b")) == "KeyError: 'a\\n b'"
    assert failure_with_location(AlraoUserError("bad input", hint="fix it")) == "bad input (fix it)"


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("first line\nsecond line"),
        AlraoUserError("bad  input\nhere", hint="fix it"),
        RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB"),
        ValueError(""),
    ],
    ids=["bug", "user-error", "out-of-memory", "no-message"],
)
def test_check_and_screen_share_one_failure_rule(error):
    """Raised outside model code, a check's reason is the screen's line itself (no location to add)."""
    assert failure_with_location(error) == failure_line(error)
    assert "\n" not in failure_line(error) and "  " not in failure_line(error)


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
    (sound_wrap,) = [case for case in cases if case.get("classname").endswith(":DropoutNormGain") and case.get("name") == "wrap"]
    assert sound_wrap.find("system-out").text.endswith("; note: one rate per tensor (no per-feature rule) for: gain")


def test_an_unwritable_junit_path_is_a_user_error(mixed_results):
    with pytest.raises(AlraoUserError, match="cannot write the JUnit report"):
        write_junit("/proc/nope/alrao.xml", list(mixed_results.values()))


def test_check_json_is_stable_plain_data(mixed_results):
    results = list(mixed_results.values())
    report = json.loads(json.dumps(check_json(results, 1.5)))
    assert report["passed"] is False and report["seconds"] == 1.5
    assert [entry["arch"] for entry in report["architectures"]] == [result.arch for result in results]
    item = report["architectures"][0]["items"][0]
    assert set(item) == {"name", "status", "seconds", "reason", "detail", "note"}
    assert report["architectures"][-1]["passed"] is True


def test_check_table_marks_each_item_and_gives_the_total_time(mixed_results):
    results = list(mixed_results.values())
    console = Console(record=True, width=250, color_system=None)
    console.print(check_table(results, 12.34))
    text = console.export_text()
    assert "12.3 s" in text and f"{len(results)} architecture(s)" in text
    assert text.count("✗") == len(BROKEN_MODELS) + 1
    assert "no_such_model" in text and all(name in text for name in CHECK_ITEMS)


# VGG-11-BN as torchvision lays it out (conv-BN-ReLU blocks, max pools, a 7x7 adaptive pool
# that copies a 32x32 image's 1x1 features 49 times, two dropout layers, torchvision's
# init), with half its channels and a 512-unit classifier. torchvision's own vgg11_bn
# (129 M parameters, most in a 4096-unit classifier) takes 25 s for the train item alone
# on two cores, and torchvision hard-codes its classifier's width. This one (9 M) keeps
# what made the former, Alrao-trained item fail a healthy vgg11_bn on 32x32 images: under
# the check's Alrao (rates in [1e-3, 1], 5 copies) its loss after five steps was above the
# first (2.3 -> 2.5 to 10) for each of seeds 0 to 4 on these images (torchvision's: to hundreds).
SMALL_VGG11_BN = """
class SmallVGG11BN(nn.Module):
    def __init__(self, num_classes, input_shape):
        super().__init__()
        layers, channels = [], input_shape[0]
        for width in [32, "M", 64, "M", 128, 128, "M", 256, 256, "M", 256, 256, "M"]:
            if width == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
                channels = width
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(7)
        self.classifier = nn.Sequential(
            nn.Linear(channels * 7 * 7, 512), nn.ReLU(True), nn.Dropout(),
            nn.Linear(512, 512), nn.ReLU(True), nn.Dropout(),
            nn.Linear(512, num_classes),
        )
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))
"""

RANDOM_IMAGES = """
import torch
from torch.utils.data import TensorDataset


def make_datasets(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)

    def split(count):
        images = torch.randn(count, 3, 32, 32, generator=generator)
        return TensorDataset(images, torch.randint(0, 10, (count,), generator=generator))

    return split(32), split(8)
"""


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """32x32 RGB noise with 10 random labels: CIFAR-10's shapes, offline."""
    path = tmp_path_factory.mktemp("images") / "random_images.py"
    path.write_text(RANDOM_IMAGES)
    return load_data(DataSpec(source=f"python:{path}:make_datasets"))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_healthy_vgg11_bn_passes_train_on_32x32_images(seed, images, tmp_path, monkeypatch):
    """Issue 16: train judges the model (Adam at 1e-3), so a healthy VGG passes it whatever the seed.

    The check stops after train: serialize and deterministic are tested above, and would triple the time.
    """
    monkeypatch.setattr(check_module, "CHECK_ITEMS", CHECK_ITEMS[: CHECK_ITEMS.index("train") + 1])
    (result,) = run_checks([write_model(tmp_path, "small_vgg", SMALL_VGG11_BN)], images, seed=seed)
    assert [item.name for item in result.items] == ["build", "forward", "wrap", "train"]
    assert result.passed, failure_lines([result])
    assert "Adam at lr 0.001" in result.items[-1].detail


def test_equal_outputs_differ_by_nothing_even_where_they_are_infinite():
    # A step that blows an output up to inf on both sides of a comparison must not read as
    # "different" (inf - inf is NaN): serialize would call the model random and compare nothing.
    from alrao_cli.study.check import _largest_difference

    inf, nan = float("inf"), float("nan")
    assert _largest_difference(torch.tensor([inf, -inf, nan, 1.0]), torch.tensor([inf, -inf, nan, 1.0])) == 0.0
    assert _largest_difference(torch.tensor([inf, 1.0]), torch.tensor([-inf, 1.0])) == inf
    assert _largest_difference(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.5])) == 0.5


AUXILIARY_OUTPUT_MODEL = """
class Auxiliary(nn.Module):
    def __init__(self, num_classes, input_shape):
        super().__init__()
        self.body = nn.Linear(math.prod(input_shape), 32)
        self.head = nn.Linear(32, num_classes)
        self.aux = nn.Linear(32, num_classes)

    def forward(self, x):
        hidden = torch.relu(self.body(x.flatten(1)))
        if self.training:  # as torchvision's googlenet does with aux_logits on
            return self.head(hidden), self.aux(hidden)
        return self.head(hidden)
"""


def test_a_model_with_auxiliary_outputs_while_training_fails_train_saying_so(data, tmp_path):
    result = check_architecture(write_model(tmp_path, "auxiliary", AUXILIARY_OUTPUT_MODEL), data)
    train = result.items[CHECK_ITEMS.index("train")]
    assert statuses(result)[: CHECK_ITEMS.index("train") + 1] == ["passed", "passed", "passed", "failed"]
    assert train.reason.startswith("in training mode forward() returns a tuple, not one tensor [batch, num_classes]")
