"""Data is checked before any model trains: each problem is one line naming the dataset and the item.

Image folders with links list each file once, so validation never sees a training
image; NumPy data trains; a last batch of one example does not break BatchNorm.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from alrao_cli.data import imagefolder
from alrao_cli.data.batches import batches, num_batches
from alrao_cli.data.datasets import InMemoryDataset
from alrao_cli.data.load import load_data
from alrao_cli.data.spec import DataSpec
from alrao_cli.errors import AlraoUserError
from support import invoke, load_results

HEADER = "import numpy as np\nimport torch\nfrom torch.utils.data import Dataset, TensorDataset\n\n"

FACTORIES = HEADER + textwrap.dedent(
    """
    class Items(Dataset):
        '''Items computed on read (not held as tensors): `x_of(i)`, `y_of(i)`.'''

        def __init__(self, size, x_of, y_of):
            self.size, self.x_of, self.y_of = size, x_of, y_of

        def __len__(self):
            return self.size

        def __getitem__(self, index):
            return self.x_of(index), self.y_of(index)

    def features(size, offset=0):
        return torch.arange(offset, offset + size * 3, dtype=torch.float32).reshape(size, 3) / 10

    def held(labels):
        return TensorDataset(features(len(labels)), torch.tensor(labels))

    def one_class():
        return held([3] * 8), held([3, 3])

    def all_zero():
        return held([0] * 8), held([0, 0])

    def negative_training_label():
        return held([0, 1, 2, -1, 1, 0]), held([0, 1])

    def validation_label_too_large():
        return held([0, 1, 2, 0, 1, 2]), held([0, 1, 7])

    def validation_label_too_large_not_held():
        return held([0, 1, 2, 0, 1, 2]), Items(4, lambda i: np.zeros(3), lambda i: 9 if i == 2 else i % 3)

    def float_label_among_integers():
        return Items(6, lambda i: np.zeros(3), lambda i: 2.5 if i == 4 else i % 2), held([0, 1])

    def nan_label():
        return Items(6, lambda i: np.zeros(3), lambda i: float("nan") if i == 1 else i % 2), held([0, 1])

    def float_validation_labels():
        return held([0, 1, 0, 1]), TensorDataset(features(3), torch.tensor([0.0, 1.0, 0.0]))

    def nan_regression_target():
        targets = torch.ones(6, 2)
        targets[4, 1] = float("nan")
        return TensorDataset(features(6), targets), TensorDataset(features(2), torch.ones(2, 2))

    def nan_input():
        x = features(8)
        x[5, 2] = float("nan")
        return TensorDataset(x, torch.arange(8) % 2), held([0, 1])

    def infinite_validation_input():
        return held([0, 1, 0, 1]), Items(4, lambda i: np.full(3, np.inf if i == 2 else 0.0), lambda i: i % 2)

    def raises_on_read():
        def x_of(index):
            if index == 3:
                raise ValueError("broken record")
            return np.zeros(3)
        return Items(6, x_of, lambda i: i % 2), held([0, 1])

    def nan_input_past_the_sample():
        '''400 items, read lazily: the load-time sample (256 of them, spread) skips item 301.'''
        return Items(400, lambda i: np.full(3, np.nan if i == 301 else 0.5 * (i % 2)), lambda i: i % 2), held([0, 1])

    def mixed_label_types():
        return [(np.zeros(3), 0), (np.ones(3), 1), (np.ones(3), 1.0), (np.zeros(3), 0)], held([0, 1])

    def numpy_float64_tensors():
        rng = np.random.default_rng(0)
        x, y = rng.normal(size=(24, 4)), (np.arange(24) % 2).astype(np.int32)
        return (
            TensorDataset(torch.from_numpy(x[:18]), torch.from_numpy(y[:18])),
            TensorDataset(torch.from_numpy(x[18:]), torch.from_numpy(y[18:])),
        )

    def numpy_float64_pairs():
        rng = np.random.default_rng(0)
        x, y = rng.normal(size=(24, 4)), np.arange(24) % 2
        return list(zip(x[:18], y[:18])), list(zip(x[18:], y[18:]))

    def seventeen():
        '''17 training examples: in batches of 8, a last batch of one.'''
        generator = torch.Generator().manual_seed(0)
        y = torch.arange(21) % 2
        x = torch.randn(21, 4, generator=generator) + 2.0 * y[:, None]
        return TensorDataset(x[:17], y[:17]), TensorDataset(x[17:], y[17:])
    """
)

BN_MODEL = """
import math
from torch import nn

def bn_net(num_classes, input_shape):
    return nn.Sequential(
        nn.Flatten(), nn.Linear(math.prod(input_shape), 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, num_classes)
    )
"""


@pytest.fixture
def factory(tmp_path: Path):
    path = tmp_path / "data_factories.py"
    path.write_text(FACTORIES)
    return lambda name: f"python:{path}:{name}"


def noise_images(root: Path, counts: dict[str, int], size: int = 6) -> Path:
    """``counts[name]`` PNGs of random pixels under ``root/name``: no two alike, so a shared image is a shared file."""
    rng = np.random.default_rng(0)
    for name, count in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{index}.png")
    return root


def load_error(source: str, **spec) -> AlraoUserError:
    with pytest.raises(AlraoUserError) as raised:
        load_data(DataSpec(source, **spec))
    return raised.value


def one_error_line(result) -> str:
    """The one line a refused command printed, with its exit code checked: 2, nothing trained."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    (line,) = result.stderr.strip().splitlines()
    return line


# --------------------------------------------------------------------------- image folders with links


def test_links_list_each_image_once_and_validation_never_shares_a_file_with_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = noise_images(tmp_path / "pictures", {"cat": 6, "dog": 6, "dog/sub": 2})
    os.symlink("..", root / "cat" / "up")  # back to the image folder: a loop
    os.symlink(".", root / "cat" / "here")  # to itself: a loop
    os.symlink("0.png", root / "dog" / "again.png")  # a file twice
    os.symlink("sub", root / "dog" / "more")  # a folder twice
    spec = DataSpec(f"imagefolder:{root}", val_fraction=0.3)
    data = load_data(spec)
    assert (data.info.train_size, data.info.val_size) == (10, 4)  # the 14 files, once each
    train_rows = {bytes(image.numpy()) for image in data.train.inputs}
    val_rows = {bytes(image.numpy()) for image in data.val.inputs}
    assert len(train_rows) == 10 and len(val_rows) == 4 and not train_rows & val_rows
    monkeypatch.setattr(imagefolder, "IN_MEMORY_IMAGE_LIMIT", 0)  # read lazily: the files are at hand
    lazy = load_data(spec)
    train_files = {os.path.realpath(image.path) for image in lazy.train.files}
    val_files = {os.path.realpath(image.path) for image in lazy.val.files}
    assert len(train_files) == 10 and len(val_files) == 4 and not train_files & val_files


def test_a_file_linked_into_two_classes_is_refused(tmp_path: Path) -> None:
    root = noise_images(tmp_path / "pictures", {"cat": 3, "dog": 3})
    os.symlink(root / "cat" / "1.png", root / "dog" / "stolen.png")
    error = load_error(f"imagefolder:{root}")
    assert error.message == f"data imagefolder:{root}: dog/stolen.png and cat/1.png are one file in two classes"
    assert "one class folder" in error.hint


# --------------------------------------------------------------------------- one line per problem


def test_one_class_only_is_refused_before_training(tmp_path: Path, factory) -> None:
    root = noise_images(tmp_path / "pictures", {"cat": 5})
    line = one_error_line(invoke("screen", "mlp", "--data", f"imagefolder:{root}", "--out", str(tmp_path / "run")))
    assert line.startswith(f"error: data imagefolder:{root}: one class only: a classification needs at least two")
    assert not (tmp_path / "run" / "results.json").exists()
    assert "one class only" in load_error(factory("all_zero")).message
    assert load_error(factory("one_class")).message.endswith(
        ":one_class: every training example is of class 3: a classification needs two classes or more"
    )


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("negative_training_label", "training item 3: label -1 is negative"),
        ("validation_label_too_large", "validation item 2: label 7 is outside the 3 classes (0 to 2)"),
        ("validation_label_too_large_not_held", "validation item 2: label 9 is outside the 3 classes (0 to 2)"),
    ],
)
def test_labels_out_of_range_in_either_split(factory, name: str, message: str) -> None:
    error = load_error(factory(name))
    assert error.message == f"data {factory(name)}: {message}"
    assert "`classes`" in error.hint


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("float_label_among_integers", "training item 4: label 2.5 (float32) is not an integer class label"),
        ("nan_label", "training item 1: label nan (float32) is not an integer class label"),
        ("float_validation_labels", "validation item 0: label 0.0 (float32) is not an integer class label"),
        ("mixed_label_types", "training item 2: label 1.0 (float32) is not an integer class label"),
        ("nan_regression_target", "training item 4: the target has NaN or infinite values"),
    ],
)
def test_float_nan_and_mixed_labels(factory, name: str, message: str) -> None:
    assert load_error(factory(name)).message == f"data {factory(name)}: {message}"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("nan_input", "training item 5: the input has NaN or infinite values"),
        ("infinite_validation_input", "validation item 2: the input has NaN or infinite values"),
    ],
)
def test_inputs_with_nan_or_infinity(factory, name: str, message: str) -> None:
    assert load_error(factory(name)).message == f"data {factory(name)}: {message}"


def test_an_item_that_raises_is_named_in_one_line(tmp_path: Path, factory) -> None:
    line = one_error_line(invoke("check", "mlp", "--data", factory("raises_on_read")))
    assert line.startswith(f"error: data {factory('raises_on_read')}: training item 3: cannot be read: ValueError: broken record")
    root = noise_images(tmp_path / "pictures", {"cat": 3, "dog": 3})
    (root / "dog" / "1.png").write_bytes(b"not an image")
    line = one_error_line(invoke("screen", "mlp", "--data", f"imagefolder:{root}", "--out", str(tmp_path / "run")))
    assert line.startswith(f"error: data imagefolder:{root}: item 4 (dog/1.png): cannot be read: UnidentifiedImageError")
    assert line.endswith("(remove or replace the file)")


def test_a_bad_item_first_read_while_training_stops_the_study_and_fails_no_model(tmp_path: Path, factory) -> None:
    out = tmp_path / "run"
    result = invoke("screen", "mlp", "cnn1d", "--data", factory("nan_input_past_the_sample"), "--epochs", "1",
                    "--batch-size", "50", "--no-plots", "--quiet", "--out", str(out))
    line = one_error_line(result)
    assert line == (
        f"error: data {factory('nan_input_past_the_sample')}: training item 301: the input has NaN or infinite values "
        "(clean or drop the example)"
    )
    assert load_results(out)["runs"] == []  # neither architecture recorded as failed: --resume once the data is fixed


@pytest.mark.parametrize("side", [8, 11], ids=["over the limit (a warning)", "over twice the limit (an error)"])
def test_a_decompression_bomb_is_an_error_naming_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, side: int) -> None:
    root = noise_images(tmp_path / "pictures", {"cat": 3, "dog": 3})
    Image.new("RGB", (side, side)).save(root / "cat" / "1.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)  # 6x6 images pass; 8x8 warns, 11x11 is an error to PIL
    error = load_error(f"imagefolder:{root}")
    kind = "DecompressionBombWarning" if side == 8 else "DecompressionBombError"
    assert error.message.startswith(f"data imagefolder:{root}: item 1 (cat/1.png): cannot be read: {kind}: ")
    assert error.hint == "shrink it below PIL's limit of 50 pixels, or remove it"


# --------------------------------------------------------------------------- NumPy data


@pytest.mark.parametrize("name", ["numpy_float64_tensors", "numpy_float64_pairs"])
def test_numpy_float64_data_comes_as_float32_inputs_and_int64_labels(factory, name: str) -> None:
    data = load_data(DataSpec(factory(name)))
    assert (data.info.task, data.info.num_classes, data.info.input_shape) == ("classification", 2, (4,))
    for dataset in (data.train, data.val):
        x, y = next(batches(dataset, 4, shuffle=False, seed=0, epoch=0))
        assert x.dtype == torch.float32 and y.dtype == torch.int64 and tuple(x.shape) == (4, 4)
    if name == "numpy_float64_tensors":  # converted once, when loaded
        assert data.train.inputs.dtype == torch.float32 and data.train.targets.dtype == torch.int64


def test_a_numpy_float64_dataset_trains(tmp_path: Path, factory) -> None:
    out = tmp_path / "run"
    result = invoke("screen", "mlp", "--data", factory("numpy_float64_pairs"), "--epochs", "1", "--batch-size", "6",
                    "--no-plots", "--quiet", "--out", str(out))
    assert result.exit_code == 0, result.output
    (run,) = load_results(out)["runs"]
    assert run["status"] == "ok", run["reason"]


# --------------------------------------------------------------------------- a last batch of one example


@pytest.mark.parametrize("held", [True, False], ids=["in memory", "data loader"])
def test_a_last_batch_of_one_example_joins_the_batch_before_it(held: bool) -> None:
    def dataset(size: int):
        examples = InMemoryDataset(torch.arange(size, dtype=torch.float32)[:, None], torch.arange(size))
        return examples if held else torch.utils.data.Subset(examples, range(size))

    for size, sizes in [(17, [8, 9]), (16, [8, 8]), (18, [8, 8, 2]), (9, [9]), (1, [1])]:
        epoch = list(batches(dataset(size), 8, shuffle=True, seed=1, epoch=2))
        assert [len(y) for _, y in epoch] == sizes and num_batches(dataset(size), 8) == len(sizes)
        assert sorted(torch.cat([y for _, y in epoch]).tolist()) == list(range(size))
        resumed = list(batches(dataset(size), 8, shuffle=True, seed=1, epoch=2, skip=len(sizes) - 1))
        assert len(resumed) == 1 and torch.equal(resumed[0][1], epoch[-1][1])


def test_a_batchnorm_model_passes_check_and_trains_when_the_last_batch_would_hold_one_example(
    tmp_path: Path, factory
) -> None:
    model = tmp_path / "bn_model.py"
    model.write_text(BN_MODEL)
    arch, data = f"{model}:bn_net", factory("seventeen")
    checked = invoke("check", arch, "--data", data)
    assert checked.exit_code == 0, checked.output
    out = tmp_path / "run"
    screened = invoke("screen", arch, "--data", data, "--batch-size", "8", "--epochs", "1", "--no-plots", "--quiet",
                      "--out", str(out))
    assert screened.exit_code == 0, screened.output
    (run,) = load_results(out)["runs"]
    assert run["status"] == "ok", run["reason"]
    assert run["history"][0]["step"] == 2  # 17 examples: batches of 8 and 9
