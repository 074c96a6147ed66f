"""The built-in zoo: every model builds for MNIST-1D (and images where it says so),
ends in the Linear layer Alrao replaces, and trains.

``num_classes`` is 7 here, not 10, so that a head hard-wired to 10 classes would fail.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import alrao_cli.zoo
from alrao_cli import AlraoModel, AlraoSGD, AlraoUserError, alrao_step
from alrao_cli.zoo.recurrent import as_sequence, features_per_step
from alrao_cli.sources.build import build_model, count_parameters
from alrao_cli.sources.arch import expand_arch
from alrao_cli.sources.registry import list_zoo

NUM_CLASSES = 7
REQUIRED = {"mlp", "cnn1d", "resnet_small", "mobilenet_small", "vgg_small", "lstm", "gru"}
MNIST1D = (40,)
IMAGE = (3, 32, 32)
CHANNELS_BY_LENGTH = (2, 40)

CASES = [
    (entry.name, shape)
    for entry in list_zoo()
    for shape in (MNIST1D, CHANNELS_BY_LENGTH, IMAGE)
    if shape != IMAGE or "image" in entry.fits
]
CASE_IDS = [f"{name}-{'x'.join(map(str, shape))}" for name, shape in CASES]


def batch(shape: tuple[int, ...], size: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(size, *shape, generator=generator), torch.randint(0, NUM_CLASSES, (size,), generator=generator)


def build(name: str, shape: tuple[int, ...]) -> nn.Module:
    torch.manual_seed(0)
    return build_model(name, NUM_CLASSES, shape)


def output_layer(model: nn.Module) -> nn.Linear:
    """The layer Alrao replaces: the last registered Linear with NUM_CLASSES outputs."""
    heads = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == NUM_CLASSES]
    return heads[-1]


def test_the_zoo_has_the_promised_models_with_unique_names():
    names = [entry.name for entry in list_zoo()]
    assert REQUIRED <= set(names)
    assert len(names) == len(set(names))
    assert all("image" in entry.fits for entry in list_zoo() if entry.name != "cnn1d")


@pytest.mark.parametrize(("name", "shape"), CASES, ids=CASE_IDS)
def test_output_is_batch_by_classes_finite_and_is_the_linear_heads_output(name, shape):
    model = build(name, shape)
    head = output_layer(model)
    captured: list[torch.Tensor] = []
    head.register_forward_hook(lambda module, inputs, output: captured.append(output))
    x, _ = batch(shape)
    out = model(x)
    assert out.shape == (8, NUM_CLASSES)
    assert torch.isfinite(out).all()
    assert len(captured) == 1 and out is captured[0]


@pytest.mark.parametrize(("name", "shape"), CASES, ids=CASE_IDS)
def test_one_sgd_step_lowers_the_loss_on_its_batch(name, shape):
    model = build(name, shape)
    head = output_layer(model)
    head_before = head.weight.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = batch(shape)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    optimizer.step()
    assert not torch.equal(head.weight, head_before)
    with torch.no_grad():
        assert F.cross_entropy(model(x), y) < loss


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_alrao_wraps_every_zoo_model_and_trains_it(name):
    """Wrapped, every zoo model takes Alrao steps: each parameter moves, the switch learns."""
    model = build(name, MNIST1D)
    head_in = output_layer(model).in_features
    alrao = AlraoModel(model, NUM_CLASSES, n_copies=3, lr_min=1e-3, lr_max=0.1)
    assert alrao.copies.weight.shape == (3, NUM_CLASSES, head_in)
    optimizer = AlraoSGD(alrao)
    x, y = batch(MNIST1D)
    before = {key: p.detach().clone() for key, p in alrao.named_parameters()}
    losses = [alrao_step(alrao, optimizer, x, y) for _ in range(3)]
    assert all(math.isfinite(loss) for loss in losses) and int(alrao.switch.steps) == 3
    unmoved = [key for key, p in alrao.named_parameters() if torch.equal(before[key], p)]
    assert unmoved == []
    assert alrao(x).shape == (8, NUM_CLASSES)


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_mnist1d_models_are_small(name):
    assert 10_000 <= count_parameters(build(name, MNIST1D)) <= 150_000


def test_cnn1d_refuses_images_with_a_clear_error():
    with pytest.raises(AlraoUserError, match=r"cnn1d reads 1-D examples \[L\] or \[C, L\]"):
        build_model("cnn1d", NUM_CLASSES, IMAGE)


@pytest.mark.parametrize("name", ["resnet_small", "vgg_small", "mobilenet_small", "lstm"])
def test_an_example_of_four_dimensions_is_refused(name):
    with pytest.raises(AlraoUserError, match="expected one example shaped"):
        build_model(name, NUM_CLASSES, (1, 2, 8, 8))


def test_recurrent_models_read_an_image_row_by_row():
    x = torch.randn(2, 3, 5, 4)
    steps = as_sequence(x)
    assert steps.shape == (2, 5, 12) and features_per_step((3, 5, 4)) == 12
    for row in range(5):
        assert torch.equal(steps[1, row], torch.cat([x[1, c, row] for c in range(3)]))
    signal = torch.randn(2, 40)
    assert torch.equal(as_sequence(signal)[:, :, 0], signal)
    assert build_model("gru", NUM_CLASSES, IMAGE).rnn.input_size == 3 * 32


@pytest.mark.parametrize("name", ["mlp", "cnn1d", "resnet_small", "mobilenet_small", "vgg_small"])
def test_a_width_argument_changes_the_size(name):
    narrow = count_parameters(build_model(name, NUM_CLASSES, MNIST1D, {"width": 8}))
    assert narrow < count_parameters(build(name, MNIST1D))


def test_a_hidden_size_argument_changes_the_recurrent_models():
    wide = build_model("lstm", NUM_CLASSES, MNIST1D, {"hidden_size": 32})
    assert wide.rnn.hidden_size == 32 and output_layer(wide).in_features == 32


def test_each_zoo_file_works_as_an_arch_by_path():
    folder = alrao_cli.zoo.__path__[0]
    expanded = {arch.rpartition(":")[2] for family in ("mlp", "cnn1d", "resnet", "mobilenet", "vgg", "recurrent")
                for arch in expand_arch(f"{folder}/{family}.py")}
    assert expanded == {entry.name for entry in list_zoo()}
