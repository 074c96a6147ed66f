"""AlraoSGD and AlraoAdam against the reference's one-parameter-at-a-time steps."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from alrao_cli import AlraoAdam, AlraoModel, AlraoSGD, alrao_step
from alrao_cli.alrao import reference

# Parameters that get no gradient for the first LATE_STEPS steps (a layer used only
# later): Adam must give them the bias correction of their own first step.
LATE = ("pre_classifier.1.weight", "copies.bias")
LATE_STEPS = 3
STEPS = 6


def make_mlp(num_classes: int = 5) -> nn.Module:
    return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, num_classes))


def batch(n=12, d=8, k=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randint(0, k, (n,), generator=g)


def make_model() -> AlraoModel:
    """In float64, so that the fast and reference paths can be compared to 1e-12."""
    torch.manual_seed(0)
    return AlraoModel(make_mlp(), num_classes=5, n_copies=3, lr_min=1e-3, lr_max=1e-1).double()


def gradients(model: AlraoModel, step: int, late: bool = True) -> dict[str, Tensor | None]:
    """Made-up gradients for one step, the same for any copy of the model; with ``late``,
    none for the ``LATE`` parameters in the first ``LATE_STEPS`` steps."""
    generator = torch.Generator().manual_seed(step)
    grads = {
        name: torch.randn(p.shape, generator=generator, dtype=p.dtype) for name, p in model.named_parameters()
    }
    if late and step < LATE_STEPS:
        grads.update({name: None for name in LATE})
    return grads


def set_gradients(model: AlraoModel, step: int, late: bool = True) -> None:
    grads = gradients(model, step, late)
    for name, p in model.named_parameters():
        p.grad = grads[name]


class ReferenceOptimizer:
    """The reference step on a model's parameters and rates, with its own states."""

    def __init__(self, model: AlraoModel, step: Callable, **options) -> None:
        named = dict(model.named_parameters())
        self.names = list(named)
        self.params = list(named.values())
        self.rates = [model.rate_of(name) for name in self.names]
        self.states: list[dict] = [{} for _ in self.params]
        self._step, self.options = step, options

    def step(self) -> None:
        self._step(self.params, self.rates, self.states, **self.options)

    def state_of(self, name: str) -> dict:
        return self.states[self.names.index(name)]


SGD_CASES = {
    "plain": {},
    "weight decay": {"weight_decay": 1e-2},
    "momentum": {"momentum": 0.9},
    "nesterov and weight decay": {"momentum": 0.8, "nesterov": True, "weight_decay": 1e-3},
}
ADAM_CASES = {
    "default": {},
    "weight decay": {"weight_decay": 1e-2},
    "other betas and eps": {"betas": (0.5, 0.9), "eps": 1e-3},
}
PATHS = {"foreach": True, "single tensor": False}


def test_the_rates_differ_from_feature_to_feature():
    model = make_model()
    assert model.rate_of("pre_classifier.0.weight").unique().numel() == 16
    assert model.rate_of("copies.weight").unique().numel() == 3


def assert_same_trajectory(model, optimizer, twin, slow, states=()):
    """Step both on the same gradients; after each step, parameters and states agree."""
    fast_params = dict(model.named_parameters())
    for step in range(STEPS):
        set_gradients(model, step)
        set_gradients(twin, step)
        optimizer.step()
        slow.step()
        for name, p in twin.named_parameters():
            assert torch.allclose(fast_params[name], p, rtol=1e-10, atol=1e-12), (step, name)
            for key in states:
                if key in slow.state_of(name):
                    fast_state = optimizer.state[fast_params[name]][key]
                    assert torch.allclose(fast_state, slow.state_of(name)[key], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("foreach", PATHS.values(), ids=list(PATHS))
@pytest.mark.parametrize("options", SGD_CASES.values(), ids=list(SGD_CASES))
def test_sgd_equals_the_reference(options, foreach):
    model, twin = make_model(), make_model()
    optimizer = AlraoSGD(model, foreach=foreach, **options)
    slow = ReferenceOptimizer(twin, reference.sgd_step, **options)
    assert_same_trajectory(model, optimizer, twin, slow, states=("momentum_buffer",))


@pytest.mark.parametrize("foreach", PATHS.values(), ids=list(PATHS))
@pytest.mark.parametrize("options", ADAM_CASES.values(), ids=list(ADAM_CASES))
def test_adam_equals_the_reference(options, foreach):
    model, twin = make_model(), make_model()
    optimizer = AlraoAdam(model, foreach=foreach, **options)
    slow = ReferenceOptimizer(twin, reference.adam_step, **options)
    assert_same_trajectory(model, optimizer, twin, slow, states=("exp_avg", "exp_avg_sq"))
    for name, p in model.named_parameters():
        expected = STEPS - LATE_STEPS if name in LATE else STEPS
        assert optimizer.state[p]["step"] == slow.state_of(name)["step"] == expected, name


@pytest.mark.parametrize("foreach", PATHS.values(), ids=list(PATHS))
def test_adams_first_step_moves_a_late_parameter_by_its_rate(foreach):
    """Adam's first step is ``rate * g / (|g| + eps)`` whenever it comes (a closed form,
    not the reference): with a count shared by the group, a parameter first trained at
    step 4 would move by about 0.58 of that."""
    model = make_model()
    optimizer = AlraoAdam(model, foreach=foreach)
    late = {name: p for name, p in model.named_parameters() if name in LATE}
    for step in range(LATE_STEPS + 1):
        before = {name: p.detach().clone() for name, p in late.items()}
        set_gradients(model, step)
        optimizer.step()
    for name, p in late.items():
        grad = gradients(model, LATE_STEPS)[name]
        expected = before[name] - model.rate_of(name) * grad / (grad.abs() + 1e-8)
        assert torch.allclose(p, expected, rtol=1e-12, atol=1e-14), name


@pytest.mark.parametrize("make_optimizer", [AlraoSGD, AlraoAdam], ids=["sgd", "adam"])
def test_foreach_and_single_tensor_paths_agree(make_optimizer):
    results = []
    for foreach in (True, False):
        torch.manual_seed(0)
        model = AlraoModel(make_mlp(), num_classes=5)
        if make_optimizer is AlraoSGD:
            optimizer = AlraoSGD(model, momentum=0.9, weight_decay=1e-4, foreach=foreach)
        else:
            optimizer = AlraoAdam(model, weight_decay=1e-2, foreach=foreach)
        for step in range(5):
            alrao_step(model, optimizer, *batch(seed=step))
        results.append([p.detach().clone() for p in model.parameters()])
    for a, b in zip(*results):
        assert torch.allclose(a, b, atol=1e-7)


def test_the_step_applies_each_features_rate():
    torch.manual_seed(0)
    model = AlraoModel(make_mlp(), num_classes=5, n_copies=3)
    optimizer = AlraoSGD(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    x, y = batch()
    optimizer.zero_grad()
    model.loss(x, y).backward_loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    optimizer.step()
    for name, p in model.named_parameters():
        expected = before[name] - model.rate_of(name) * grads[name]
        assert torch.allclose(p, expected, atol=1e-7), name


TORCH_CASES = {
    "sgd nesterov": (
        lambda m: AlraoSGD(m, momentum=0.9, weight_decay=1e-3, nesterov=True),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-3, nesterov=True),
    ),
    "sgd single tensor": (
        lambda m: AlraoSGD(m, momentum=0.5, foreach=False),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.5),
    ),
    "adam": (
        lambda m: AlraoAdam(m, weight_decay=1e-2),
        lambda p: torch.optim.Adam(p, lr=0.05, weight_decay=1e-2),
    ),
    "adam single tensor": (
        lambda m: AlraoAdam(m, betas=(0.8, 0.99), weight_decay=1e-2, foreach=False),
        lambda p: torch.optim.Adam(p, lr=0.05, betas=(0.8, 0.99), weight_decay=1e-2, foreach=False),
    ),
}
# In float64: the gradient of the bias before a BatchNorm is rounding noise (the norm removes
# it), which Adam scales up to full steps in float32, differently in each implementation and
# with each thread count; in float64 that noise stays far below Adam's eps.


@pytest.mark.parametrize("make_alrao, make_torch", TORCH_CASES.values(), ids=list(TORCH_CASES))
def test_optimizers_match_torch_when_every_rate_is_the_same(make_alrao, make_torch):
    """With all rates equal, AlraoSGD/AlraoAdam must be torch's SGD/Adam (independent code)."""
    torch.manual_seed(0)
    model = AlraoModel(make_mlp(), num_classes=5, n_copies=2).double()
    for buffer in model.rates.buffers():
        buffer.fill_(0.05)
    twin = copy.deepcopy(model)
    alrao_opt, torch_opt = make_alrao(model), make_torch(list(twin.parameters()))
    for step in range(4):
        x, y = batch(seed=step)
        x = x.double()
        for m, opt in [(model, alrao_opt), (twin, torch_opt)]:
            opt.zero_grad()
            m.loss(x, y).backward_loss.backward()
            opt.step()
    for a, b in zip(model.parameters(), twin.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def trained_adam(steps: int, late: bool = True) -> tuple[AlraoModel, AlraoAdam]:
    model = make_model()
    optimizer = AlraoAdam(model, weight_decay=1e-3)
    for step in range(steps):
        set_gradients(model, step, late)
        optimizer.step()
    return model, optimizer


def restored(model: AlraoModel, state: dict) -> tuple[AlraoModel, AlraoAdam]:
    """A fresh model and AlraoAdam loaded from ``model`` and an optimizer state dict.

    A deep copy stands for the trip to disk: torch's state dicts hold live references.
    """
    twin = make_model()
    twin.load_state_dict(copy.deepcopy(model.state_dict()))
    optimizer = AlraoAdam(twin, weight_decay=1e-3)
    optimizer.load_state_dict(copy.deepcopy(state))
    return twin, optimizer


def assert_same_continuation(pairs, first_step: int, late: bool = True) -> None:
    for step in range(first_step, STEPS):
        for model, optimizer in pairs:
            set_gradients(model, step, late)
            optimizer.step()
    (a, _), (b, _) = pairs
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_adam_state_dict_round_trips_per_parameter_steps():
    # Saved after 2 steps: the late parameters have no state yet, and start after loading.
    model, optimizer = trained_adam(2)
    twin, twin_optimizer = restored(model, optimizer.state_dict())
    named = dict(twin.named_parameters())
    assert twin_optimizer.state[named["pre_classifier.0.weight"]]["step"] == 2
    assert named["copies.bias"] not in twin_optimizer.state
    assert "step" not in twin_optimizer.param_groups[0]
    assert_same_continuation([(model, optimizer), (twin, twin_optimizer)], first_step=2)
    assert twin_optimizer.state[named["copies.bias"]]["step"] == STEPS - LATE_STEPS


def test_an_adam_checkpoint_with_one_step_count_per_group_still_loads():
    """Before steps were counted per parameter, the count was the group's (and there was
    no ``foreach``): each parameter with a state takes it, as its bias correction did."""
    model, optimizer = trained_adam(4, late=False)  # every parameter took every step
    old = copy.deepcopy(optimizer.state_dict())
    for param_state in old["state"].values():
        del param_state["step"]
    group = old["param_groups"][0]
    del group["foreach"]
    group["step"] = 4
    twin, twin_optimizer = restored(model, old)
    assert "step" not in twin_optimizer.param_groups[0] and twin_optimizer.param_groups[0]["foreach"]
    assert len(twin_optimizer.state) == len(optimizer.state)
    assert all(state["step"] == 4 for state in twin_optimizer.state.values())
    assert_same_continuation([(model, optimizer), (twin, twin_optimizer)], first_step=4, late=False)


def test_a_param_group_added_later_gets_its_own_rates():
    torch.manual_seed(0)
    model = AlraoModel(make_mlp(), num_classes=5, n_copies=3)
    norm_weight = model.pre_classifier[1].weight
    norm_weight.requires_grad_(False)  # frozen when the optimizer is built, unfrozen later
    optimizer = AlraoSGD(model)
    assert all(p is not norm_weight for p in optimizer.param_groups[0]["params"])
    norm_weight.requires_grad_(True)
    optimizer.add_param_group({"params": [norm_weight]})
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer.zero_grad()
    model.loss(*batch()).backward_loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    optimizer.step()
    for name, p in model.named_parameters():
        assert torch.allclose(p, before[name] - model.rate_of(name) * grads[name], atol=1e-7), name


@pytest.mark.parametrize("make_optimizer", [AlraoSGD, AlraoAdam], ids=["sgd", "adam"])
def test_a_param_group_without_rates_is_refused(make_optimizer):
    optimizer = make_optimizer(AlraoModel(make_mlp(), num_classes=5, n_copies=3))
    with pytest.raises(ValueError, match="has no Alrao rate"):
        optimizer.add_param_group({"params": [nn.Parameter(torch.zeros(3))]})
