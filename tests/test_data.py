"""Datasets: loading, seeded splits, resumable batches, and one-line errors for user mistakes."""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
import textwrap
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset

from alrao_cli.data import imagefolder
from alrao_cli.data.batches import batches, num_batches
from alrao_cli.data.datasets import (
    Augmentation,
    InMemoryDataset,
    LazyImageDataset,
    Normalization,
)
from alrao_cli.data.factory_items import LABEL_SAMPLE
from alrao_cli.data.load import load_data
from alrao_cli.data.mnist1d import MNIST1D_ARGUMENTS, cache_path, mnist1d_arrays
from alrao_cli.data.spec import DataSpec
from alrao_cli.errors import AlraoUserError

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the module, so the real MNIST-1D is generated only once (~2 s)."""
    folder = tmp_path_factory.mktemp("alrao-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ALRAO_CACHE_DIR", str(folder))
        mnist1d_arrays()
    return folder


@pytest.fixture(autouse=True)
def cache_in_tmp(shared_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALRAO_CACHE_DIR", str(shared_cache))


def rows(inputs: torch.Tensor) -> list[bytes]:
    """Each example as bytes, to compare sets of examples regardless of order."""
    return [example.numpy().tobytes() for example in inputs]


def fake_mnist1d(calls: list[int]):
    """A stand-in for mnist1d's make_dataset: tiny, counted, and reseeding numpy like the real one."""

    def make_dataset(args):
        calls.append(1)
        np.random.seed(args.seed)
        x = np.random.randn(20, 40)
        return {"x": x[:16], "y": np.arange(16) % 10, "x_test": x[16:], "y_test": np.arange(4)}

    return make_dataset


# --------------------------------------------------------------------------- mnist1d


def test_mnist1d_shapes_classes_and_split_sizes() -> None:
    loaded = load_data(DataSpec())
    info = loaded.info
    assert (info.name, info.num_classes, info.input_shape, info.task) == ("mnist1d", 10, (40,), "classification")
    assert (info.train_size, info.val_size) == (3600, 400)
    assert (len(loaded.train), len(loaded.val)) == (3600, 400)
    x, y = loaded.train[0]
    assert x.shape == (40,) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert set(loaded.train.targets.tolist()) == set(range(10))
    quarter = load_data(DataSpec(val_fraction=0.25)).info
    assert (quarter.train_size, quarter.val_size) == (3000, 1000)


def test_mnist1d_split_is_disjoint_complete_and_seeded() -> None:
    inputs, _ = mnist1d_arrays()
    first = load_data(DataSpec(seed=3))
    again = load_data(DataSpec(seed=3))
    other = load_data(DataSpec(seed=4))
    train_rows, val_rows = rows(first.train.inputs), rows(first.val.inputs)
    assert not set(train_rows) & set(val_rows)
    assert sorted(train_rows + val_rows) == sorted(rows(torch.from_numpy(inputs)))
    assert torch.equal(first.train.inputs, again.train.inputs) and torch.equal(first.val.targets, again.val.targets)
    assert not torch.equal(first.val.inputs, other.val.inputs)


def test_mnist1d_subset_keeps_the_first_examples_of_the_split() -> None:
    full = load_data(DataSpec(seed=1))
    small = load_data(DataSpec(seed=1, subset=100))
    assert (small.info.train_size, small.info.val_size) == (100, 25)
    assert torch.equal(small.train.inputs, full.train.inputs[:100])
    assert torch.equal(small.val.inputs, full.val.inputs[:25])
    assert load_data(DataSpec(subset=3)).info.val_size == 1


def test_mnist1d_cache_is_reused_and_generation_leaves_global_rngs_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mnist1d.data

    monkeypatch.setenv("ALRAO_CACHE_DIR", str(tmp_path))
    calls: list[int] = []
    monkeypatch.setattr(mnist1d.data, "make_dataset", fake_mnist1d(calls))
    np.random.seed(7)
    expected_draw = np.random.rand()
    np.random.seed(7)
    inputs, targets = mnist1d_arrays()
    assert np.random.rand() == expected_draw
    assert inputs.dtype == np.float32 and targets.dtype == np.int64 and inputs.shape == (16, 40)
    cached = list(tmp_path.glob("mnist1d-*.npz"))
    assert len(cached) == 1 and not list(tmp_path.glob("*.tmp"))
    again_inputs, _ = mnist1d_arrays()
    assert calls == [1] and np.array_equal(again_inputs, inputs)
    cached[0].write_bytes(b"not a zip file")
    repaired, _ = mnist1d_arrays()
    assert calls == [1, 1] and np.array_equal(repaired, inputs)


@pytest.mark.parametrize("damage", [b"", "truncated"], ids=["empty", "truncated"])
def test_an_empty_or_truncated_mnist1d_cache_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: bytes | str
) -> None:
    import mnist1d.data

    monkeypatch.setenv("ALRAO_CACHE_DIR", str(tmp_path))
    calls: list[int] = []
    monkeypatch.setattr(mnist1d.data, "make_dataset", fake_mnist1d(calls))
    inputs, _ = mnist1d_arrays()
    path = cache_path()
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) - 100] if damage == "truncated" else damage)
    rebuilt, _ = mnist1d_arrays()
    assert calls == [1, 1] and np.array_equal(rebuilt, inputs)
    assert path.read_bytes() == whole  # the damaged file was replaced


def test_reading_the_mnist1d_cache_does_not_import_the_mnist1d_package(shared_cache: Path) -> None:
    code = (
        "import sys\n"
        "from alrao_cli.data.load import load_data\n"
        "from alrao_cli.data.spec import DataSpec\n"
        "assert load_data(DataSpec()).info.train_size == 3600\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'mnist1d'))\n"
    )
    environment = {**os.environ, "ALRAO_CACHE_DIR": str(shared_cache)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_cached_dataset_is_the_mnist1d_packages_default() -> None:
    """The arguments written out to name the cache are the package's own defaults."""
    from mnist1d.data import get_dataset_args

    defaults = get_dataset_args(as_dict=True)
    defaults.pop("url", None)
    assert defaults == MNIST1D_ARGUMENTS
    assert cache_path().name == "mnist1d-5c9c9f8289509c7b.npz"  # the name caches already have


def test_spec_is_picklable() -> None:
    spec = DataSpec(source="cifar10", data_dir="/data", subset=10, augment=True, seed=5)
    assert pickle.loads(pickle.dumps(spec)) == spec


# --------------------------------------------------------------------------- batches


class PlainDataset(Dataset):
    """Not an InMemoryDataset: goes through the DataLoader path."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        self.inputs, self.targets = inputs, targets

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        return self.inputs[index], self.targets[index]


def numbered(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.arange(size, dtype=torch.float32).unsqueeze(1).repeat(1, 3), torch.arange(size)


@pytest.fixture(params=["in_memory", "data_loader"])
def dataset(request: pytest.FixtureRequest) -> Dataset:
    inputs, targets = numbered(23)
    return InMemoryDataset(inputs, targets) if request.param == "in_memory" else PlainDataset(inputs, targets)


def collect(dataset: Dataset, **options) -> list[tuple[torch.Tensor, torch.Tensor]]:
    options = {"shuffle": True, "seed": 0, "epoch": 0} | options
    return list(batches(dataset, 5, **options))


def same_batches(left, right) -> bool:
    return len(left) == len(right) and all(
        torch.equal(a, c) and torch.equal(b, d) for (a, b), (c, d) in zip(left, right)
    )


def test_batches_cover_every_example_once_with_matching_inputs_and_targets(dataset: Dataset) -> None:
    epoch = collect(dataset, seed=2, epoch=1)
    targets = torch.cat([y for _, y in epoch])
    assert sorted(targets.tolist()) == list(range(23))
    assert targets.tolist() != list(range(23))
    assert all(torch.equal(x[:, 0], y.float()) for x, y in epoch)
    assert [len(y) for _, y in epoch] == [5, 5, 5, 5, 3]
    assert num_batches(dataset, 5) == 5


def test_batch_order_is_a_function_of_seed_and_epoch(dataset: Dataset) -> None:
    assert same_batches(collect(dataset, seed=1, epoch=2), collect(dataset, seed=1, epoch=2))
    assert not same_batches(collect(dataset, seed=1, epoch=2), collect(dataset, seed=1, epoch=3))
    assert not same_batches(collect(dataset, seed=1, epoch=2), collect(dataset, seed=2, epoch=2))


def test_both_paths_give_the_same_batches() -> None:
    inputs, targets = numbered(23)
    fast = collect(InMemoryDataset(inputs, targets), seed=9, epoch=4)
    loader = collect(PlainDataset(inputs, targets), seed=9, epoch=4)
    assert same_batches(fast, loader)


@pytest.mark.parametrize("skip", [0, 1, 3, 4, 5, 7])
def test_skip_resumes_exactly_where_an_uninterrupted_epoch_would_be(dataset: Dataset, skip: int) -> None:
    whole = collect(dataset, seed=4, epoch=2)
    assert same_batches(collect(dataset, seed=4, epoch=2, skip=skip), whole[skip:])


def test_unshuffled_batches_keep_the_dataset_order(dataset: Dataset) -> None:
    targets = torch.cat([y for _, y in collect(dataset, shuffle=False)])
    assert targets.tolist() == list(range(23))


def test_drop_last_drops_only_the_partial_batch(dataset: Dataset) -> None:
    epoch = collect(dataset, drop_last=True)
    assert [len(y) for _, y in epoch] == [5, 5, 5, 5]
    assert num_batches(dataset, 5, drop_last=True) == 4
    assert same_batches(epoch, collect(dataset)[:4])


def test_data_loader_workers_give_the_same_batches() -> None:
    inputs, targets = numbered(23)
    plain = PlainDataset(inputs, targets)
    assert same_batches(collect(plain, workers=1, seed=5), collect(plain, workers=0, seed=5))


# --------------------------------------------------------------------------- augmentation


def windows(image: torch.Tensor, padding: int, fill: tuple[float, ...], flip: bool) -> list[torch.Tensor]:
    """Every crop (and mirrored crop) that augmentation may return, built the slow way."""
    channels, height, width = image.shape
    padded = torch.tensor(fill).view(channels, 1, 1).repeat(1, height + 2 * padding, width + 2 * padding)
    padded[:, padding : padding + height, padding : padding + width] = image
    crops = [
        padded[:, top : top + height, left : left + width]
        for top in range(2 * padding + 1)
        for left in range(2 * padding + 1)
    ]
    return crops + [crop.flip(-1) for crop in crops] if flip else crops


@pytest.mark.parametrize("flip", [True, False])
def test_augmentation_returns_crops_of_the_padded_image(flip: bool) -> None:
    images = torch.randn(6, 2, 5, 7)
    fill = (-1.5, 2.0)
    augmented = Augmentation(2, flip, fill)(images, torch.Generator().manual_seed(0))
    assert augmented.shape == images.shape
    for image, result in zip(images, augmented):
        assert any(torch.equal(result, window) for window in windows(image, 2, fill, flip))
    originals = images.repeat(30, 1, 1, 1)
    many = Augmentation(0, flip, fill)(originals, torch.Generator().manual_seed(1))
    mirrored = [torch.equal(m, o.flip(-1)) for m, o in zip(many, originals)]
    assert all(torch.equal(m, o) or mirror for m, o, mirror in zip(many, originals, mirrored))
    assert any(mirrored) == flip


def test_augmented_batches_are_seeded_per_batch_and_resumable() -> None:
    pixels = torch.randint(0, 256, (20, 3, 8, 8), dtype=torch.uint8)
    normalization = Normalization((0.5, 0.4, 0.3), (0.2, 0.25, 0.3))
    augmentation = Augmentation(4, True, normalization.black())
    train = InMemoryDataset(pixels, torch.arange(20), normalization, augmentation)
    epoch = list(batches(train, 6, shuffle=True, seed=1, epoch=0))
    assert same_batches(epoch, list(batches(train, 6, shuffle=True, seed=1, epoch=0)))
    assert same_batches(epoch[2:], list(batches(train, 6, shuffle=True, seed=1, epoch=0, skip=2)))
    plain = list(batches(train.augmented(None), 6, shuffle=True, seed=1, epoch=0))
    assert not same_batches(epoch, plain)
    assert all(torch.equal(a[1], b[1]) for a, b in zip(epoch, plain))
    copies = InMemoryDataset(pixels[:1].repeat(10, 1, 1, 1), torch.zeros(10), normalization, augmentation)
    first, second = batches(copies, 5, shuffle=False, seed=1, epoch=0)
    assert not torch.equal(first[0], second[0])


def test_normalization_maps_black_to_its_fill_value() -> None:
    normalization = Normalization((0.5, 0.25), (0.5, 0.125))
    pixels = torch.tensor([0, 255], dtype=torch.uint8).view(1, 2, 1, 1).expand(1, 2, 2, 2)
    expected = torch.tensor([(0 - 0.5) / 0.5, (1 - 0.25) / 0.125]).view(1, 2, 1, 1).expand(1, 2, 2, 2)
    assert torch.allclose(normalization(pixels), expected)
    assert normalization.black() == pytest.approx((-1.0, -2.0))


# --------------------------------------------------------------------------- torchvision


def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX (``*-ubyte``) file as MNIST ships it: magic 0x08 (ubyte) + ndim, big-endian sizes, bytes."""
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def fake_mnist(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (40, 28, 28)), np.arange(40) % 10
    write_idx(raw / "train-images-idx3-ubyte", images)
    write_idx(raw / "train-labels-idx1-ubyte", labels)
    write_idx(raw / "t10k-images-idx3-ubyte", images[:4])
    write_idx(raw / "t10k-labels-idx1-ubyte", labels[:4])
    return tmp_path, images, labels


def test_mnist_loads_from_torchvision_layout(fake_mnist) -> None:
    root, images, labels = fake_mnist
    loaded = load_data(DataSpec("mnist", data_dir=str(root), val_fraction=0.25))
    info = loaded.info
    assert (info.num_classes, info.input_shape, info.train_size, info.val_size) == (10, (1, 28, 28), 30, 10)
    stored = torch.cat([loaded.train.inputs, loaded.val.inputs])
    assert sorted(rows(stored)) == sorted(rows(torch.from_numpy(images.astype(np.uint8)).unsqueeze(1)))
    x, y = loaded.val[3]
    raw = loaded.val.inputs[3].float() / 255
    assert torch.allclose(x, (raw - MNIST_MEAN) / MNIST_STD, atol=1e-6)
    position = rows(torch.from_numpy(images.astype(np.uint8)).unsqueeze(1)).index(rows(loaded.val.inputs[3:4])[0])
    assert int(y) == labels[position]


def test_mnist_augmentation_crops_but_never_mirrors_digits(fake_mnist) -> None:
    root, _, _ = fake_mnist
    loaded = load_data(DataSpec("mnist", data_dir=str(root), augment=True))
    assert loaded.train.augmentation == Augmentation(4, False, ((0 - MNIST_MEAN) / MNIST_STD,))
    assert loaded.val.augmentation is None


@pytest.mark.parametrize(
    ("source", "folder"),
    [
        ("mnist", "MNIST/raw"),
        ("fashion-mnist", "FashionMNIST/raw"),
        ("cifar10", "cifar-10-batches-py"),
        ("cifar100", "cifar-100-python"),
        ("svhn", "train_32x32.mat"),
    ],
)
def test_missing_torchvision_data_names_the_folder_and_download(tmp_path: Path, source: str, folder: str) -> None:
    with pytest.raises(AlraoUserError) as raised:
        load_data(DataSpec(source, data_dir=str(tmp_path)))
    assert str(tmp_path / folder) in raised.value.message
    assert "--download" in raised.value.hint


def test_failed_download_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets

    def offline(self) -> None:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", offline)
    with pytest.raises(AlraoUserError, match="could not download mnist") as raised:
        load_data(DataSpec("mnist", data_dir=str(tmp_path), download=True))
    assert "network" in raised.value.hint


# --------------------------------------------------------------------------- imagefolder

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CLASS_COLOURS = {"cat": (200, 10, 10), "dog": (10, 200, 10), "emu": (10, 10, 200)}


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """Solid-colour images, one colour per class, in varied sizes and modes."""
    root = tmp_path / "pictures"
    for name, colour in CLASS_COLOURS.items():
        (root / name).mkdir(parents=True)
        for index, size in enumerate([(9, 12), (40, 40), (33, 20), (16, 16)]):
            Image.new("RGB", size, colour).save(root / name / f"{index}.png")
        Image.new("RGB", (5, 5), colour).convert("RGBA").save(root / name / "alpha.png")
    return root


def expected_pixel(label: int) -> torch.Tensor:
    colour = list(CLASS_COLOURS.values())[label]
    return torch.tensor([(c / 255 - m) / s for c, m, s in zip(colour, IMAGENET_MEAN, IMAGENET_STD)])


def test_imagefolder_loads_classes_shapes_and_pixels(image_folder: Path) -> None:
    loaded = load_data(DataSpec(f"imagefolder:{image_folder}", val_fraction=0.2))
    info = loaded.info
    assert (info.num_classes, info.input_shape, info.train_size + info.val_size) == (3, (3, 32, 32), 15)
    assert isinstance(loaded.train, InMemoryDataset) and info.val_size == 3
    for dataset in (loaded.train, loaded.val):
        for index in range(len(dataset)):
            x, y = dataset[index]
            assert torch.allclose(x, expected_pixel(int(y)).view(3, 1, 1).expand(3, 32, 32), atol=1e-5)


def test_large_imagefolder_is_lazy_with_identical_batches(image_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = DataSpec(f"imagefolder:{image_folder}", augment=True, seed=2)
    in_memory = load_data(spec)
    monkeypatch.setattr(imagefolder, "IN_MEMORY_IMAGE_LIMIT", 0)
    lazy = load_data(spec)
    assert isinstance(lazy.train, LazyImageDataset) and lazy.info == in_memory.info
    for dataset in ("train", "val"):
        options = {"shuffle": True, "seed": 3, "epoch": 1}
        fast = list(batches(getattr(in_memory, dataset), 4, **options))
        slow = list(batches(getattr(lazy, dataset), 4, **options))
        assert len(fast) == len(slow)
        assert all(torch.allclose(a, c, atol=1e-6) and torch.equal(b, d) for (a, b), (c, d) in zip(fast, slow))


def test_hidden_folders_and_files_are_no_part_of_an_image_folder(tmp_path: Path) -> None:
    root = tmp_path / "pictures"
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        for index in range(3):
            Image.new("RGB", (6, 6), CLASS_COLOURS[name]).save(root / name / f"{index}.png")
    (root / ".ipynb_checkpoints").mkdir()
    (root / ".ipynb_checkpoints" / "notes-checkpoint.ipynb").write_text("{}")  # no image: a class would fail
    (root / ".hidden").mkdir()
    Image.new("RGB", (6, 6)).save(root / ".hidden" / "0.png")
    (root / "__MACOSX" / "cat").mkdir(parents=True)
    (root / "__MACOSX" / "cat" / "._0.png").write_bytes(b"resource fork, not an image")
    (root / "cat" / "._0.png").write_bytes(b"resource fork, not an image")
    (root / "cat" / ".ipynb_checkpoints").mkdir()
    Image.new("RGB", (6, 6)).save(root / "cat" / ".ipynb_checkpoints" / "0-checkpoint.png")
    loaded = load_data(DataSpec(f"imagefolder:{root}", val_fraction=0.34))
    assert loaded.info.num_classes == 2 and loaded.info.train_size + loaded.info.val_size == 6
    everything = [loaded.train[i] for i in range(len(loaded.train))] + [loaded.val[i] for i in range(len(loaded.val))]
    for x, y in everything:  # the black checkpoint copy would not have its class's colour
        colour = ("cat", "dog")[int(y)]
        expected = expected_pixel(list(CLASS_COLOURS).index(colour)).view(3, 1, 1).expand(3, 32, 32)
        assert torch.allclose(x, expected, atol=1e-5)


def test_images_of_every_mode_load_as_the_same_rgb_pixels(tmp_path: Path) -> None:
    """Grey 100 stored as RGB, L, LA, P, RGBA, 16-bit or JPEG reads back as RGB (100, 100, 100)."""
    root = tmp_path / "modes"
    grey = np.full((5, 7), 100, dtype=np.uint8)
    palette = Image.new("P", (7, 5), 2)
    palette.putpalette([0, 0, 0] * 2 + [100, 100, 100] + [0, 0, 0] * 253)
    images = {
        "rgb.png": Image.new("RGB", (7, 5), (100, 100, 100)),
        "grey.png": Image.fromarray(grey, "L"),
        "grey_alpha.png": Image.fromarray(np.stack([grey, grey // 2], axis=-1), "LA"),
        "palette.png": palette,
        "rgba.png": Image.new("RGBA", (7, 5), (100, 100, 100, 30)),
        "grey16.png": Image.fromarray(grey.astype(np.uint16) * 257),  # 100/255 of the 16-bit range
        "grey.jpg": Image.fromarray(grey, "L"),
    }
    for folder in ("a", "b"):
        (root / folder).mkdir(parents=True)
        for name, image in images.items():
            image.save(root / folder / name)
    assert Image.open(root / "a" / "grey16.png").mode.startswith("I;16")
    loaded = load_data(DataSpec(f"imagefolder:{root}", val_fraction=0.25))
    pixels = torch.cat([loaded.train.inputs, loaded.val.inputs])
    assert pixels.shape == (14, 3, 32, 32) and pixels.dtype == torch.uint8
    assert (pixels.int() - 100).abs().max() <= 1  # JPEG may round by one


def test_a_subset_larger_than_the_data_keeps_all_of_it(tmp_path: Path) -> None:
    loaded = load_data(DataSpec(subset=10**6)).info
    assert (loaded.train_size, loaded.val_size) == (3600, 400)
    path = write_factory(tmp_path, CLASSIFICATION_FACTORY)
    factory = load_data(DataSpec(f"python:{path}:tensors", subset=1000)).info
    assert (factory.train_size, factory.val_size) == (30, 8)


# --------------------------------------------------------------------------- python factory

CLASSIFICATION_FACTORY = """
import torch
from torch.utils.data import Dataset, TensorDataset

class Pairs(Dataset):
    classes = None
    def __init__(self, size, seed):
        generator = torch.Generator().manual_seed(seed)
        self.x = torch.randn(size, 2, 3, generator=generator)
        self.y = (torch.arange(size) % 4).tolist()
    def __len__(self):
        return len(self.y)
    def __getitem__(self, index):
        return self.x[index].numpy(), self.y[index]

def tensors():
    train = TensorDataset(torch.randn(30, 5), torch.arange(30) % 6)
    return train, TensorDataset(torch.randn(8, 5), torch.arange(8) % 6)

def pairs(seed):
    return Pairs(24, seed), Pairs(10, seed + 1)

def named(seed, data_dir, **other):
    train, val = pairs(seed)
    train.classes = ["a", "b", "c", "d", "e", "f", "g"]
    return train, val
"""

REGRESSION_FACTORY = """
import torch
from torch.utils.data import TensorDataset

def make(data_dir=None):
    assert data_dir == "somewhere"
    x = torch.randn(12, 4)
    return TensorDataset(x, x[:, :3] * 2.0), TensorDataset(x[:5], x[:5, :3])
"""


def write_factory(tmp_path: Path, text: str, name: str = "factory.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_python_factory_of_tensors_is_fast_and_inferred(tmp_path: Path) -> None:
    path = write_factory(tmp_path, CLASSIFICATION_FACTORY)
    loaded = load_data(DataSpec(f"python:{path}:tensors"))
    info = loaded.info
    assert (info.task, info.num_classes, info.input_shape, info.train_size, info.val_size) == (
        "classification", 6, (5,), 30, 8,
    )
    assert isinstance(loaded.train, InMemoryDataset)


def test_python_factory_of_custom_datasets_gets_the_seed_and_batches(tmp_path: Path) -> None:
    path = write_factory(tmp_path, CLASSIFICATION_FACTORY)
    first = load_data(DataSpec(f"python:{path}:pairs", seed=5))
    again = load_data(DataSpec(f"python:{path}:pairs", seed=5))
    other = load_data(DataSpec(f"python:{path}:pairs", seed=6))
    assert (first.info.num_classes, first.info.input_shape) == (4, (2, 3))
    assert torch.equal(first.train.x, again.train.x) and not torch.equal(first.train.x, other.train.x)
    x, y = next(batches(first.train, 8, shuffle=False, seed=0, epoch=0))
    assert x.shape == (8, 2, 3) and torch.equal(y, torch.arange(8) % 4)


def test_python_factory_classes_attribute_and_subset(tmp_path: Path) -> None:
    path = write_factory(tmp_path, CLASSIFICATION_FACTORY)
    loaded = load_data(DataSpec(f"python:{path}:named", subset=7))
    assert loaded.info.num_classes == 7
    assert (len(loaded.train), len(loaded.val)) == (7, 1)


COUNTING_FACTORY = """
import torch
from torch.utils.data import Dataset

class Counting(Dataset):
    '''`size` examples, example i labelled `label_of(i)`; counts the examples read.'''

    def __init__(self, size, label_of):
        self.size, self.label_of, self.reads = size, label_of, 0

    def __len__(self):
        return self.size

    def __getitem__(self, index):
        self.reads += 1
        return torch.full((3,), float(index)), self.label_of(index)

def sorted_by_class():
    return Counting(10_000, lambda i: i * 7 // 10_000), Counting(100, lambda i: i % 7)

def one_bad_label():
    return Counting(10_000, lambda i: 99 if i == 5000 else i % 5), Counting(100, lambda i: i % 5)

def named():
    train = Counting(10_000, lambda i: i % 3)
    train.classes = ["a", "b", "c", "d"]
    return train, Counting(100, lambda i: i % 4)
"""


def test_a_large_dataset_is_sampled_not_read_through_at_load_time(tmp_path: Path) -> None:
    path = write_factory(tmp_path, COUNTING_FACTORY)
    loaded = load_data(DataSpec(f"python:{path}:sorted_by_class"))
    assert (loaded.info.task, loaded.info.num_classes) == ("classification", 7)  # the last class is found
    assert loaded.train.reads <= LABEL_SAMPLE + 3  # item 0 is also read to check the pair and the shape
    named = load_data(DataSpec(f"python:{path}:named"))
    assert named.info.num_classes == 4 and named.train.reads <= 3  # declared classes: nothing to count


def test_a_label_the_sample_missed_fails_when_training_reads_it(tmp_path: Path) -> None:
    path = write_factory(tmp_path, COUNTING_FACTORY)
    loaded = load_data(DataSpec(f"python:{path}:one_bad_label"))
    assert loaded.info.num_classes == 5  # example 5000 is not among the sampled ones
    with pytest.raises(AlraoUserError) as raised:
        for _ in batches(loaded.train, 1000, shuffle=False, seed=0, epoch=0):
            pass
    assert "training item 5000: label 99 is outside the 5 classes" in raised.value.message
    assert "`classes`" in raised.value.hint


VAL_LABEL_BEYOND_TRAIN = """
import torch
from torch.utils.data import TensorDataset

def make():
    return TensorDataset(torch.randn(8, 2), torch.arange(8) % 3), TensorDataset(torch.randn(4, 2), torch.arange(4))
"""


def test_validation_labels_held_as_tensors_are_checked_at_load_time(tmp_path: Path) -> None:
    path = write_factory(tmp_path, VAL_LABEL_BEYOND_TRAIN)
    with pytest.raises(AlraoUserError, match="validation item 3: label 3 is outside the 3 classes"):
        load_data(DataSpec(f"python:{path}:make"))


def test_python_factory_regression(tmp_path: Path) -> None:
    path = write_factory(tmp_path, REGRESSION_FACTORY)
    loaded = load_data(DataSpec(f"python:{path}:make", data_dir="somewhere"))
    info = loaded.info
    assert (info.task, info.num_classes, info.input_shape, info.train_size, info.val_size) == (
        "regression", 3, (4,), 12, 5,
    )
    x, y = next(batches(loaded.train, 12, shuffle=False, seed=0, epoch=0))
    assert torch.allclose(y, x[:, :3] * 2)


# --------------------------------------------------------------------------- errors

BAD_FILES = {
    "syntax": "import torch\n\ndef make(:\n    pass\n",
    "import_fails": "import torch\nraise RuntimeError('broken module')\n",
    "not_a_pair": "def make():\n    return 5\n",
    "three": "def make():\n    return [1], [2], [3]\n",
    "items": "def make():\n    return [1, 2], [3]\n",
    "raises": "def helper():\n    pass\n\ndef make():\n    raise ValueError('bad data')\n",
    "string_targets": "def make():\n    return [(1.0, 'cat')], [(2.0, 'dog')]\n",
    "empty": "def make():\n    return [], [(1, 1)]\n",
    "arrays": "import numpy as np\n\ndef make():\n    return np.zeros((8, 2)), np.zeros(8, dtype=int)\n",
    "loaders": (
        "import torch\nfrom torch.utils.data import DataLoader, TensorDataset\n\ndef make():\n"
        "    data = TensorDataset(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long))\n"
        "    return DataLoader(data), DataLoader(data)\n"
    ),
    "strings": "def make():\n    return 'train.csv', 'val.csv'\n",
    "mapping": "def make():\n    return {'x': [1.0], 'y': [0]}, {'x': [2.0], 'y': [1]}\n",
}


@pytest.mark.parametrize(
    ("file", "factory", "message"),
    [
        ("syntax", "make", "syntax error in {path}, line 3"),
        ("import_fails", "make", "importing {path} failed at line 2: RuntimeError: broken module"),
        ("not_a_pair", "make", "must return (train_dataset, val_dataset), got int"),
        ("three", "make", "must return (train_dataset, val_dataset), got tuple"),
        ("items", "make", "must be (x, y) pairs, got int"),
        ("raises", "make", "{path} at line 5 raised ValueError: bad data"),
        ("raises", "build", "has no function named 'build'"),
        ("string_targets", "make", "must hold tensors, arrays or numbers"),
        ("empty", "make", "train dataset is empty"),
        ("arrays", "make", "must return (train_dataset, val_dataset), got two arrays"),
        ("loaders", "make", "its train dataset is a DataLoader, not a map-style dataset"),
        ("strings", "make", "its train dataset is a str, not a map-style dataset"),
        ("mapping", "make", "reading item 0 of its train dataset raised KeyError: 0"),
    ],
)
def test_bad_python_factories(tmp_path: Path, file: str, factory: str, message: str) -> None:
    path = write_factory(tmp_path, BAD_FILES[file], f"{file}.py")
    with pytest.raises(AlraoUserError) as raised:
        load_data(DataSpec(f"python:{path}:{factory}"))
    assert message.format(path=path.resolve()) in raised.value.message


def test_missing_factory_lists_the_callables(tmp_path: Path) -> None:
    path = write_factory(tmp_path, BAD_FILES["raises"], "raises.py")
    with pytest.raises(AlraoUserError) as raised:
        load_data(DataSpec(f"python:{path}:build"))
    assert raised.value.hint == "callables in that file: helper, make"


@pytest.mark.parametrize(
    ("spec", "message", "hint"),
    [
        (DataSpec("cifar-10"), "unknown data source 'cifar-10'", "did you mean 'cifar10'?"),
        (DataSpec("mnist2d"), "unknown data source", "python:FILE.py:FACTORY"),
        (DataSpec(""), "the data source is empty", "mnist1d"),
        (DataSpec("imagefolder:"), "imagefolder needs a folder", "imagefolder:"),
        (DataSpec("python:data.py"), "must read python:FILE.py:FACTORY", "python:"),
        (DataSpec("python:/nowhere/data.py:make"), "not found: /nowhere/data.py", "path"),
        (DataSpec(val_fraction=0.0), "val_fraction", "tenth"),
        (DataSpec(val_fraction=1.0), "val_fraction", "tenth"),
        (DataSpec(val_fraction=-0.2), "val_fraction", "tenth"),
        (DataSpec(subset=0), "subset must be a positive", None),
        (DataSpec(subset=-5), "subset must be a positive", None),
        (DataSpec(augment=True), "augmentation is only available for image datasets", "--augment"),
        (DataSpec("imagefolder:/nowhere/pictures"), "/nowhere/pictures does not exist", "path"),
    ],
)
def test_bad_specs(spec: DataSpec, message: str, hint: str | None) -> None:
    with pytest.raises(AlraoUserError) as raised:
        load_data(spec)
    assert message in raised.value.message
    assert hint is None or hint in raised.value.hint


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({"loose.png": True}, "has no class subfolders"),
        ({"cat/notes.txt": False, "dog/0.png": True}, "class subfolder with no images"),
        ({"cat/0.png": False, "cat/1.png": True, "dog/2.png": True}, r"item 0 \(cat/0.png\): cannot be read"),
        ({"cat/0.png": True}, "too few to hold out a validation set"),
    ],
)
def test_bad_image_folders(tmp_path: Path, layout: dict[str, bool], message: str) -> None:
    for name, is_image in layout.items():
        path = tmp_path / "pictures" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if is_image:
            Image.new("RGB", (4, 4)).save(path)
        else:
            path.write_text("not an image")
    with pytest.raises(AlraoUserError, match=message):
        load_data(DataSpec(f"imagefolder:{tmp_path / 'pictures'}"))


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True])
def test_bad_batch_sizes(batch_size) -> None:
    inputs, targets = numbered(4)
    with pytest.raises(AlraoUserError, match="batch size"):
        num_batches(InMemoryDataset(inputs, targets), batch_size)
    with pytest.raises(AlraoUserError, match="batch size"):
        batches(InMemoryDataset(inputs, targets), batch_size, shuffle=False, seed=0, epoch=0)
