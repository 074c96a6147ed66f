"""AlraoModel and the single-backward step, against slow, obviously correct versions."""

from __future__ import annotations

import math

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from alrao_cli import AlraoAdam, AlraoDivergedError, AlraoModel, AlraoSGD, AlraoUserError, alrao_step
from alrao_cli.alrao import apply_alrao_loss, reference


def make_mlp(num_classes: int = 5) -> nn.Module:
    return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, num_classes))


def make_cnn(num_classes: int = 10) -> nn.Module:
    return nn.Sequential(
        nn.Unflatten(1, (1, 40)),
        nn.Conv1d(1, 8, 5, padding=2), nn.BatchNorm1d(8), nn.ReLU(),
        nn.Conv1d(8, 8, 3, padding=1), nn.BatchNorm1d(8), nn.ReLU(),
        nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(8, num_classes),
    )


def batch(n=12, d=8, k=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randint(0, k, (n,), generator=g)


def test_each_copy_gets_its_own_loss_gradient_and_the_body_the_mixture_gradient():
    torch.manual_seed(0)
    model = AlraoModel(make_mlp(), num_classes=5, n_copies=4)
    for _ in range(3):  # move the posterior away from uniform
        model.update_switch(-torch.rand(4))
    x, y = batch()
    model.loss(x, y).backward_loss.backward()

    # The reference's two paths, one autograd.grad per copy on that copy's loss alone.
    weight, bias = model.copies.weight, model.copies.bias
    log_a = model.switch.log_posterior
    slow = reference.two_path_loss(model.features(x), weight, bias, y, log_a, regression=False)
    for j in range(4):
        grad_w, grad_b = torch.autograd.grad(slow.own_losses[j], [weight, bias], retain_graph=True)
        assert torch.allclose(weight.grad[j], grad_w[j], atol=1e-6)
        assert torch.allclose(bias.grad[j], grad_b[j], atol=1e-6)
        assert torch.count_nonzero(grad_w[torch.arange(4) != j]) == 0

    body = list(model.pre_classifier.parameters())
    expected = torch.autograd.grad(slow.mixture_loss, body)
    for p, g in zip(body, expected):
        assert torch.allclose(p.grad, g, atol=1e-6)


def test_mixture_loss_uses_the_posterior_from_before_the_update():
    torch.manual_seed(0)
    model = AlraoModel(make_mlp(), num_classes=5, n_copies=3)
    optimizer = AlraoSGD(model)
    x, y = batch()
    model.eval()  # BatchNorm in eval: the same input gives the same features
    with torch.no_grad():
        expected = F.nll_loss(model(x), y).item()
    reported = alrao_step(model, optimizer, x, y)
    assert reported == pytest.approx(expected, rel=1e-5)
    assert model.switch.steps == 1


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_alrao_step_equals_the_documented_four_lines_with_the_switch_updated_last(momentum):
    # alrao_step updates the switch before the backward (it is cheaper there): the
    # backward must not read the posterior, so both orders give the same numbers.
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        model = AlraoModel(make_mlp(), num_classes=5, n_copies=4)
        models.append((model, AlraoSGD(model, momentum=momentum)))
    (early, early_opt), (late, late_opt) = models
    for seed in range(5):
        x, y = batch(seed=seed)
        alrao_step(early, early_opt, x, y)
        loss = late.loss(x, y)
        late_opt.zero_grad(set_to_none=True)
        loss.backward_loss.backward()
        late_opt.step()
        late.update_switch(loss.copy_log_likelihoods)
    assert early.switch.steps == late.switch.steps == 5
    assert not torch.allclose(early.switch.posterior, torch.full((4,), 0.25, dtype=torch.float64))
    assert torch.equal(early.switch.log_weights, late.switch.log_weights)
    assert all(torch.equal(a, b) for a, b in zip(early.parameters(), late.parameters()))


OPTIMIZERS = {
    "sgd": lambda m: AlraoSGD(m),
    "sgd momentum, foreach off": lambda m: AlraoSGD(m, momentum=0.9, weight_decay=1e-3, foreach=False),
    "adam": lambda m: AlraoAdam(m, weight_decay=1e-3),
}


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("make_optimizer", OPTIMIZERS.values(), ids=list(OPTIMIZERS))
def test_apply_alrao_loss_is_alrao_step_without_the_host_check(make_optimizer, task):
    """The screen's learner does ``loss = model.loss(x, y); apply_alrao_loss(...)``: the
    same step, bit for bit, as alrao_step on the same batch, parameters and switch."""
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = AlraoModel(make_mlp(), num_classes=5, n_copies=4, task=task, lr_min=1e-3, lr_max=1.0)
        runs.append((model, make_optimizer(model)))
    (checked, checked_opt), (unchecked, unchecked_opt) = runs
    for seed in range(4):
        x, y = batch(seed=seed)
        y = torch.randn(len(x), 5) if task == "regression" else y
        value = alrao_step(checked, checked_opt, x, y)
        loss = unchecked.loss(x, y)
        apply_alrao_loss(unchecked, unchecked_opt, loss)
        assert value == loss.mixture_loss.item()
        assert torch.equal(checked.switch.log_weights, unchecked.switch.log_weights)
        assert torch.equal(checked.switch.log_posterior, unchecked.switch.log_posterior)
        assert all(torch.equal(a, b) for a, b in zip(checked.parameters(), unchecked.parameters()))
        assert all(torch.equal(a, b) for a, b in zip(checked.buffers(), unchecked.buffers()))
    assert checked.switch.steps == unchecked.switch.steps == 4


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_the_prediction_is_the_reference_mixture(task):
    torch.manual_seed(0)
    model = AlraoModel(make_mlp(), num_classes=5, n_copies=4, task=task).eval()
    for _ in range(3):
        model.update_switch(-torch.rand(4) * 2)
    x, _ = batch()
    with torch.no_grad():
        expected = reference.mixture_prediction(
            model.features(x), model.copies.weight, model.copies.bias, model.switch.log_posterior,
            regression=task == "regression",
        )
        assert torch.allclose(model(x), expected, atol=1e-6)


def test_copies_are_stored_class_major_and_their_gradients_and_momentum_keep_that_layout():
    # weight[j] is copy j, while the memory runs class by class: the product then gives
    # [B, K, N] directly. A gradient or momentum buffer in another layout would mean a
    # copy per step (autograd's or the optimizer's).
    model = AlraoModel(make_mlp(), num_classes=5, n_copies=3)
    weight, bias = model.copies.weight, model.copies.bias
    assert weight.shape == (3, 5, 16) and weight.transpose(0, 1).is_contiguous()
    assert bias.shape == (3, 5) and bias.t().is_contiguous()
    optimizer = AlraoSGD(model, momentum=0.9)
    alrao_step(model, optimizer, *batch())
    for p in (weight, bias):
        assert p.grad.stride() == p.stride()
        assert optimizer.state[p]["momentum_buffer"].stride() == p.stride()
    loaded = AlraoModel(make_mlp(), num_classes=5, n_copies=3)
    loaded.load_state_dict(model.state_dict())
    assert loaded.copies.weight.stride() == weight.stride() and torch.equal(loaded.copies.weight, weight)
    # and copy j is still weight[j], bias[j], for the copies' own forward [B, N, K]
    z = torch.randn(4, 16)
    outputs = model.copies(z)
    assert outputs.shape == (4, 3, 5)
    for j in range(3):
        assert torch.allclose(outputs[:, j], F.linear(z, weight[j], bias[j]), atol=1e-6)


def test_lazy_layers_are_sized_by_the_example_input_and_refused_without_one():
    def lazy_mlp():
        return nn.Sequential(nn.LazyLinear(16), nn.ReLU(), nn.LazyLinear(5))

    with pytest.raises(AlraoUserError, match=r"lazy layers with no size yet \(0.weight, 0.bias, 2.weight") as info:
        AlraoModel(lazy_mlp(), num_classes=5)
    assert "example_input=" in info.value.hint
    x, y = batch()
    model = AlraoModel(lazy_mlp(), num_classes=5, n_copies=3, example_input=x)
    assert model.head_name == "2" and model.copies.weight.shape == (3, 5, 16)
    assert model.rate_of("pre_classifier.0.weight").shape == (16, 1)
    assert model.pre_classifier[0].training  # the sizing forward left the modes alone
    losses = [alrao_step(model, AlraoSGD(model), x, y) for _ in range(3)]
    assert all(torch.isfinite(torch.tensor(losses)))


def test_copy_rates_are_log_spaced_with_both_ends():
    model = AlraoModel(make_mlp(), num_classes=5, lr_min=1e-4, lr_max=1.0, n_copies=5)
    assert torch.allclose(model.copy_lrs, torch.tensor([1e-4, 1e-3, 1e-2, 1e-1, 1.0]), rtol=1e-5)
    assert model.rate_of("copies.weight").shape == (5, 1, 1)


def test_state_dict_round_trips_rates_momentum_switch_and_steps():
    torch.manual_seed(0)
    model = AlraoModel(make_mlp(), num_classes=5, seed=1)
    optimizer = AlraoSGD(model, momentum=0.9)
    for step in range(3):
        alrao_step(model, optimizer, *batch(seed=step))
    torch.manual_seed(123)
    restored = AlraoModel(make_mlp(), num_classes=5, seed=99)  # other init, other rates
    restored_opt = AlraoSGD(restored, momentum=0.9)
    # A deep copy stands for the trip to disk: torch's state dicts hold live references.
    restored.load_state_dict(copy.deepcopy(model.state_dict()))
    restored_opt.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    assert restored.switch.steps == 3 and restored_opt.param_groups[0]["step"] == 3
    for step in range(3, 6):
        a = alrao_step(model, optimizer, *batch(seed=step))
        b = alrao_step(restored, restored_opt, *batch(seed=step))
        assert a == b
    for p, q in zip(model.parameters(), restored.parameters()):
        assert torch.equal(p, q)


def test_to_after_building_moves_rates_and_switch():
    torch.manual_seed(0)
    model = AlraoModel(make_mlp(), num_classes=5).to(torch.float64)
    optimizer = AlraoSGD(model)
    x, y = batch()
    loss = alrao_step(model, optimizer, x.double(), y)
    assert model.rate_of("copies.weight").dtype == torch.float64
    assert torch.isfinite(torch.tensor(loss))


def test_divergence_is_reported_and_leaves_parameters_untouched():
    torch.manual_seed(0)
    model = AlraoModel(make_mlp(), num_classes=5)
    optimizer = AlraoSGD(model)
    before = [p.detach().clone() for p in model.parameters()]
    x, y = batch()
    x[0, 0] = float("nan")
    with pytest.raises(AlraoDivergedError) as info:
        alrao_step(model, optimizer, x, y)
    assert info.value.step == 1
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert model.switch.steps == 0


def test_a_cpu_autocast_step_trains_and_keeps_the_parameters_in_float32():
    torch.manual_seed(0)
    model = AlraoModel(make_mlp(), num_classes=5)
    optimizer = AlraoSGD(model)
    before = [p.detach().clone() for p in model.parameters()]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = alrao_step(model, optimizer, *batch())
    assert math.isfinite(loss) and int(model.switch.steps) == 1
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert sum(not torch.equal(a, b) for a, b in zip(before, model.parameters())) >= len(before) - 1


def test_regression_trains():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 2))
    model = AlraoModel(net, num_classes=2, task="regression", lr_min=1e-3, lr_max=1.0, n_copies=4)
    optimizer = AlraoSGD(model)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 3, generator=g)
    y = torch.stack([x[:, 0] - 2 * x[:, 1], x[:, 2] ** 2], dim=1)
    first = alrao_step(model, optimizer, x[:32], y[:32])
    for epoch in range(20):
        for i in range(0, 256, 32):
            last = alrao_step(model, optimizer, x[i : i + 32], y[i : i + 32])
    assert last < first - 1.0
    assert model(x).shape == (256, 2)


def synthetic_mnist1d(n: int, seed: int):
    """Ten noisy shifted templates of length 40: MNIST-1D's shape, made here."""
    g = torch.Generator().manual_seed(seed)
    templates = torch.randn(10, 40, generator=torch.Generator().manual_seed(123))
    y = torch.randint(0, 10, (n,), generator=g)
    shift = torch.randint(-3, 4, (n,), generator=g)
    x = torch.stack([templates[c].roll(int(s)) for c, s in zip(y, shift)])
    return x + 0.5 * torch.randn(n, 40, generator=g), y


@pytest.mark.parametrize("make", [lambda: nn.Sequential(nn.Linear(40, 64), nn.ReLU(), nn.Linear(64, 10)), make_cnn])
def test_alrao_trains_small_models_on_mnist1d_shaped_data(make):
    torch.manual_seed(0)
    x, y = synthetic_mnist1d(1024, seed=0)
    x_val, y_val = synthetic_mnist1d(256, seed=1)
    model = AlraoModel(make(), num_classes=10)
    optimizer = AlraoSGD(model)
    model.eval()
    with torch.no_grad():
        untrained = F.nll_loss(model(x_val), y_val).item()
    model.train()
    for epoch in range(5):
        order = torch.randperm(1024, generator=torch.Generator().manual_seed(epoch))
        for i in range(0, 1024, 32):
            alrao_step(model, optimizer, x[order[i : i + 32]], y[order[i : i + 32]])
    model.eval()
    with torch.no_grad():
        trained = F.nll_loss(model(x_val), y_val).item()
    assert trained < 0.6 * untrained


def test_same_seed_same_numbers():
    losses = []
    for _ in range(2):
        torch.manual_seed(0)
        model = AlraoModel(make_cnn(), num_classes=10, seed=5)
        optimizer = AlraoSGD(model, momentum=0.9)
        x, y = synthetic_mnist1d(64, seed=0)
        losses.append([alrao_step(model, optimizer, x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)])
    assert losses[0] == losses[1]


def test_a_head_transformed_before_return_is_a_clear_error():
    class SoftmaxAfterHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 5)

        def forward(self, x):
            return self.fc(x).softmax(-1)

    model = AlraoModel(SoftmaxAfterHead(), num_classes=5)
    with pytest.raises(AlraoUserError, match="transforms the output of 'fc'"):
        model(torch.randn(2, 8))


def test_a_diverged_regression_copy_does_not_poison_the_mixture():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))
    model = AlraoModel(net, num_classes=2, task="regression", n_copies=4)
    with torch.no_grad():
        model.copies.weight[3].fill_(float("inf"))  # the fastest copy blew up
    x, y = torch.randn(16, 3), torch.randn(16, 2)
    loss = model.loss(x, y)
    assert torch.isfinite(loss.mixture_loss)
    loss.backward_loss.backward()
    for name, p in model.pre_classifier.named_parameters():
        assert torch.isfinite(p.grad).all(), name
    assert torch.isfinite(model.copies.weight.grad[:3]).all()
    assert torch.isfinite(model(x)).all()
    assert torch.isfinite(model.mixture_nll(x, y)).all()


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_fused_head_matches_autograd_on_the_two_losses(task):
    """The custom backward against plain autograd through detached copies of the head."""
    torch.manual_seed(1)
    k = 3
    net = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, k))
    model = AlraoModel(net, num_classes=k, task=task, n_copies=5)
    for _ in range(2):
        model.update_switch(-torch.rand(5))
    x = torch.randn(7, 6)
    y = torch.randn(7, k) if task == "regression" else torch.randint(0, k, (7,))
    model.loss(x, y).backward_loss.backward()

    slow = reference.two_path_loss(
        model.features(x), model.copies.weight, model.copies.bias, y, model.switch.log_posterior,
        regression=task == "regression",
    )
    params = list(model.pre_classifier.parameters()) + [model.copies.weight, model.copies.bias]
    expected = torch.autograd.grad(slow.backward_loss, params)
    for p, g in zip(params, expected):
        assert torch.allclose(p.grad, g, atol=1e-5)


def test_a_diverged_classification_copy_counts_as_probability_zero_and_sends_no_gradient():
    torch.manual_seed(0)
    model = AlraoModel(make_mlp(), num_classes=5, n_copies=4)
    model.eval()  # BatchNorm in eval: the same input gives the same features twice
    with torch.no_grad():
        model.copies.weight[3, 0, 0] = float("inf")  # the fastest copy blew up
    x, y = batch()
    loss = model.loss(x, y)
    assert loss.copy_log_likelihoods[3] == -float("inf")
    loss.backward_loss.backward()

    # The reference on the three live copies alone (p_3 = 0).
    z = model.features(x)
    weight, bias = model.copies.weight.detach()[:3], model.copies.bias.detach()[:3]
    log_a = model.switch.log_posterior[:3]
    slow = reference.two_path_loss(z, weight, bias, y, log_a, regression=False)
    log_mix = reference.mixture_prediction(z.detach(), weight, bias, log_a, regression=False)
    assert loss.mixture_loss.item() == pytest.approx(slow.mixture_loss.item(), rel=1e-5)
    body = list(model.pre_classifier.parameters())
    for p, g in zip(body, torch.autograd.grad(slow.mixture_loss, body)):
        assert torch.allclose(p.grad, g, atol=1e-6)
    assert torch.isfinite(model.copies.weight.grad[:3]).all()
    assert torch.count_nonzero(model.copies.weight.grad[3]) == 0
    assert torch.count_nonzero(model.copies.bias.grad[3]) == 0
    assert torch.allclose(model(x), log_mix, atol=1e-5)
    assert torch.allclose(model.mixture_nll(x, y), -log_mix.gather(1, y.view(-1, 1)).squeeze(1), atol=1e-5)
    model.update_switch(loss.copy_log_likelihoods)
    posterior = model.switch.posterior  # copy 3 keeps only what the prior's switches hand it
    assert torch.isfinite(posterior).all() and posterior[3] < posterior[:3].min() / 2


@pytest.mark.parametrize(
    "cast, dtype",
    [(lambda m: m.half(), torch.float16), (lambda m: m.float(), torch.float32),
     (lambda m: m.bfloat16(), torch.bfloat16), (lambda m: m.to(torch.float32), torch.float32)],
    ids=["half", "float", "bfloat16", "to float32"],
)
def test_dtype_casts_leave_the_switch_float64(cast, dtype):
    model = cast(AlraoModel(make_mlp(), num_classes=5, n_copies=4))
    assert model.copies.weight.dtype == dtype and model.switch.log_posterior.dtype == dtype
    assert model.switch.log_weights.dtype == torch.float64
    model.update_switch(torch.tensor([-1.0, -2.0, -3.0, -4.0], dtype=dtype))
    model.update_switch(torch.full((4,), -float("inf"), dtype=dtype))  # every copy diverged
    assert torch.isfinite(model.switch.posterior).all()
    assert torch.isfinite(model.switch.log_posterior).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_after_building_matches_a_cpu_run():
    runs = {}
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        model = AlraoModel(make_mlp(), num_classes=5, n_copies=4)
        model = model.cuda() if device == "cuda" else model
        optimizer = AlraoSGD(model, momentum=0.9)
        losses = [alrao_step(model, optimizer, *(t.to(device) for t in batch(seed=s))) for s in range(3)]
        runs[device] = (model, losses)
    model, losses = runs["cuda"]
    assert all(rate.is_cuda for rate in model.rates.buffers())
    assert model.switch.log_weights.is_cuda and model.switch.log_weights.dtype == torch.float64
    assert model.switch.log_posterior.is_cuda
    cpu_model, cpu_losses = runs["cpu"]
    assert losses == pytest.approx(cpu_losses, rel=1e-4)
    assert torch.allclose(model.switch.posterior.cpu(), cpu_model.switch.posterior, atol=1e-5)
    for p, q in zip(model.parameters(), cpu_model.parameters()):
        assert torch.allclose(p.cpu(), q, atol=1e-4, equal_nan=True)  # a copy may diverge on both
