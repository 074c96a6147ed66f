"""The output layer: finding it in a user's model, and its N copies' one-function loss."""

from __future__ import annotations

import math

from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from alrao_cli import AlraoModel, AlraoSGD, AlraoUserError, alrao_step
from alrao_cli.alrao import reference
from alrao_cli.alrao.head import CopiesHead, find_head

TORCHVISION_HEADS = {
    "resnet18": "fc",
    "vgg11": "classifier.6",
    "mobilenet_v2": "classifier.1",
    "mobilenet_v3_small": "classifier.3",
    "efficientnet_b0": "classifier.1",
    "densenet121": "classifier",
    "convnext_tiny": "classifier.2",
    "vit_b_16": "heads.head",
}


@pytest.mark.parametrize("name, head", TORCHVISION_HEADS.items(), ids=list(TORCHVISION_HEADS))
def test_finds_the_head_of_torchvision_classifiers(name, head):
    with torch.device("meta"):  # structure only: no memory, no time
        model = torchvision.models.get_model(name, weights=None, num_classes=7)
    assert find_head(model, 7) == head


def test_squeezenet_has_no_linear_head_and_says_so():
    with torch.device("meta"):
        model = torchvision.models.squeezenet1_0(weights=None, num_classes=7)
    with pytest.raises(AlraoUserError, match="no nn.Linear with 7 outputs"):
        find_head(model, 7)


def test_wrapped_resnet18_trains_one_step_on_small_images():
    torch.manual_seed(0)
    model = AlraoModel(torchvision.models.resnet18(num_classes=10), num_classes=10, n_copies=3)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    head_before = model.copies.weight.detach().clone()
    loss = alrao_step(model, AlraoSGD(model), x, y)
    assert math.isfinite(loss) and not torch.equal(head_before, model.copies.weight)
    assert model(x).shape == (4, 10)
    assert model.single_rate_parameters() == []


class TwoHeads(nn.Module):
    """Registers its auxiliary 10-way Linear after the real head."""

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(6, 8)
        self.fc = nn.Linear(8, 10)
        self.aux = nn.Linear(6, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.body(x)))


class OutputFirst(nn.Module):
    """Registers its output layer first, then a body that ends in a Linear with as many outputs."""

    def __init__(self):
        super().__init__()
        self.out = nn.Linear(10, 10)
        self.body = nn.Sequential(nn.Linear(6, 10), nn.BatchNorm1d(10), nn.ReLU())

    def forward(self, x):
        return self.out(self.body(x))


def test_named_head_is_used():
    model = AlraoModel(TwoHeads(), num_classes=10, head="fc")
    assert model.head_name == "fc"
    assert model(torch.randn(3, 6)).shape == (3, 10)


@pytest.mark.parametrize("make, head", [(TwoHeads, "fc"), (OutputFirst, "out")], ids=["aux last", "output first"])
def test_an_example_input_finds_the_linear_whose_output_the_model_returns(make, head):
    assert find_head(make(), 10, example_input=torch.randn(2, 6)) == head
    model = AlraoModel(make(), num_classes=10, example_input=torch.randn(2, 6))
    assert model.head_name == head
    assert model(torch.randn(3, 6)).shape == (3, 10)


@pytest.mark.parametrize(
    "make, guess, message, other",
    [(TwoHeads, "aux", "'aux' was never called", "fc"),
     (OutputFirst, "body.0", r"failed after the output layer 'body.0' \(RuntimeError: running_mean", "out")],
    ids=["aux last", "output first"],
)
def test_without_an_example_a_wrong_guess_names_the_other_candidates(make, guess, message, other):
    model = AlraoModel(make(), num_classes=10)
    assert model.head_name == guess  # the last registered Linear with 10 outputs
    with pytest.raises(AlraoUserError, match=message) as info:
        model(torch.randn(3, 6))
    assert f"the others are {other}" in info.value.hint
    assert f"head={other!r}" in info.value.hint and "example_input=" in info.value.hint


def test_the_probe_leaves_the_model_as_it_was():
    model = OutputFirst()
    model.body[1].eval()  # a layer the user keeps in eval mode
    stats = model.body[1].running_mean.clone()
    find_head(model, 10, example_input=torch.randn(4, 6) + 3.0)
    assert model.training and not model.body[1].training and model.body[0].training
    assert torch.equal(model.body[1].running_mean, stats)
    assert all(not m._forward_hooks for m in model.modules())


def test_the_probe_says_when_no_candidate_output_is_returned():
    class SoftmaxAfter(TwoHeads):
        def forward(self, x):
            return super().forward(x).softmax(-1)

    with pytest.raises(AlraoUserError, match="transforms the output of 'fc'"):
        AlraoModel(SoftmaxAfter(), num_classes=10, example_input=torch.randn(2, 6))


def test_an_unknown_head_name_lists_the_linear_layers():
    with pytest.raises(AlraoUserError, match="no submodule named 'nope'") as info:
        find_head(TwoHeads(), 10, "nope")
    assert "body, fc, aux" in info.value.hint


def test_a_head_that_is_not_linear_is_refused():
    model = nn.Sequential(nn.Conv2d(3, 10, 1), nn.Flatten())
    with pytest.raises(AlraoUserError, match="is a Conv2d, not an nn.Linear"):
        find_head(model, 10, "0")


def test_features_must_be_flat():
    model = nn.Sequential(nn.Linear(4, 10))
    wrapped = AlraoModel(model, num_classes=10)
    with pytest.raises(AlraoUserError, match="features of shape"):
        wrapped(torch.randn(2, 3, 4))


# -- the copies' loss: one autograd function against two linear maps per copy ----------


@dataclass(frozen=True)
class HeadCase:
    batch: int = 7
    features: int = 6
    classes: int = 4
    copies: int = 5
    regression: bool = False
    dtype: torch.dtype = torch.float64
    posterior: str = "random"  # or "uniform", "peaked"


HEAD_CASES = {
    "classification": HeadCase(),
    "regression": HeadCase(regression=True),
    "classification float32": HeadCase(dtype=torch.float32),
    "regression float32": HeadCase(regression=True, dtype=torch.float32),
    "one copy": HeadCase(copies=1),
    "batch of one": HeadCase(batch=1),
    "two classes, uniform posterior": HeadCase(classes=2, posterior="uniform"),
    "peaked posterior": HeadCase(posterior="peaked"),
    "regression, one output": HeadCase(regression=True, classes=1),
    "many classes and copies": HeadCase(batch=16, classes=12, copies=10, features=9),
}


def head_inputs(case: HeadCase, seed: int = 0):
    """Copies, features, targets and a log-posterior, all made from one seed."""
    generator = torch.Generator().manual_seed(seed)
    head = CopiesHead(case.features, case.classes, case.copies, generator).to(case.dtype)
    z = torch.randn(case.batch, case.features, generator=generator, dtype=case.dtype) * 2
    if case.regression:
        target = torch.randn(case.batch, case.classes, generator=generator, dtype=case.dtype)
    else:
        target = torch.randint(0, case.classes, (case.batch,), generator=generator)
    scores = {
        "random": torch.randn(case.copies, generator=generator, dtype=torch.float64),
        "uniform": torch.zeros(case.copies, dtype=torch.float64),
        "peaked": torch.arange(case.copies, dtype=torch.float64) * -8.0,
    }[case.posterior]
    return head, z, target, torch.log_softmax(scores, 0).to(case.dtype)


@pytest.mark.parametrize("case", HEAD_CASES.values(), ids=list(HEAD_CASES))
def test_the_fused_loss_equals_two_linear_maps_per_copy(case):
    """Same value, same per-copy log-likelihoods, same gradients for z, W and b."""
    head, z, target, log_posterior = head_inputs(case)
    z.requires_grad_(True)
    backward_loss, mixture_loss, copy_log_lik = head.losses(z, target, log_posterior, case.regression)
    backward_loss.backward()

    leaves = [t.detach().clone().requires_grad_(True) for t in (z, head.weight, head.bias)]
    slow = reference.two_path_loss(*leaves, target, log_posterior, case.regression)
    slow.backward_loss.backward()

    loose = case.dtype == torch.float32
    tolerance = {"rtol": 1e-5, "atol": 1e-6} if loose else {"rtol": 1e-10, "atol": 1e-12}
    assert backward_loss.dtype == case.dtype
    assert torch.allclose(backward_loss.detach(), slow.mixture_loss.detach(), **tolerance)
    assert torch.equal(mixture_loss, backward_loss.detach())
    assert torch.allclose(copy_log_lik, slow.copy_log_likelihoods, **tolerance)
    for fast, leaf, name in zip((z, head.weight, head.bias), leaves, ("z", "weight", "bias")):
        assert torch.allclose(fast.grad, leaf.grad, **tolerance), name


@pytest.mark.parametrize("regression", [False, True], ids=["classification", "regression"])
def test_the_copies_predict_with_their_own_layers_and_the_reference_likelihood(regression):
    case = HeadCase(regression=regression)
    head, z, target, _ = head_inputs(case, seed=1)
    outputs = head(z)  # [B, N, K]
    log_lik = head.log_likelihoods(z, target, regression)  # [B, N]
    for j in range(case.copies):
        own = F.linear(z, head.weight[j], head.bias[j])
        assert torch.allclose(outputs[:, j], own, rtol=0, atol=1e-12)
        expected = reference.log_likelihood(own, target, regression)
        assert torch.allclose(log_lik[:, j], expected, rtol=0, atol=1e-12)
