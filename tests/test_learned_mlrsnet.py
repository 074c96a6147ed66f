"""MLR-SNet: the net against Eq. (7) by hand, the meta gradient against finite differences,
Algorithm 1's order of updates, resuming, and the saved-net file."""

from __future__ import annotations

import copy
import io
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from alrao_cli.learned.mlrsnet import (
    MLRSNetSGD,
    MLRSNetTrainer,
    ScheduleNet,
    load_schedule_net,
    save_schedule_net,
)


@pytest.fixture(autouse=True)
def one_thread():
    """Tensors here are tiny: intra-op threads only add overhead (a lot on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()


def tiny_net(seed: int, hidden_size: int = 3, gamma: float = 0.5) -> ScheduleNet:
    torch.manual_seed(seed)
    return ScheduleNet(hidden_size=hidden_size, gamma=gamma).double()


def batch(seed: int, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(size, 3, generator=generator, dtype=torch.float64)
    return x, torch.randint(0, 2, (size,), generator=generator)


def eq7_by_hand(net: ScheduleNet, losses: list[float]) -> list[tuple[float, torch.Tensor, torch.Tensor]]:
    """Eq. (7) of the paper with plain matrix products on the net's own weights."""
    H = net.hidden_size
    W1h, b1h = net.w1_hidden.weight, net.w1_hidden.bias
    W1l, b1l = net.w1_loss.weight, net.w1_loss.bias
    W2, b2 = net.w2.weight, net.w2.bias
    W3, b3 = net.w3.weight, net.w3.bias
    h, c = torch.zeros(H, dtype=W2.dtype), torch.zeros(H, dtype=W2.dtype)
    out = []
    for L in losses:
        u = torch.clamp(W1h @ h + b1h, min=0)  # ReLU(W1 h_{t-1})
        z = torch.clamp(W1l @ torch.tensor([L], dtype=W2.dtype) + b1l, min=0)  # ReLU(W1 L_t)
        pre = W2 @ torch.cat([u, z]) + b2
        i, f, o = (1 / (1 + torch.exp(-pre[k * H : (k + 1) * H])) for k in range(3))
        g = torch.tanh(pre[3 * H :])
        c = f * c + i * g
        h = o * torch.tanh(c)
        p = 1 / (1 + torch.exp(-(W3 @ h + b3)))
        out.append((net.gamma * float(p.detach()), h.detach().clone(), c.detach().clone()))
    return out


def test_defaults_are_the_papers():
    net = ScheduleNet()
    assert (net.hidden_size, net.gamma) == (40, 1.0)  # App. B; footnote 1 (image tasks)
    trainer = MLRSNetTrainer(tiny_model(0), net)
    assert trainer.meta_optimizer.defaults["lr"] == 1e-3
    assert trainer.meta_optimizer.defaults["weight_decay"] == 1e-4
    assert trainer.optimizer.defaults["weight_decay"] == 5e-4
    assert (trainer.optimizer.defaults["momentum"], trainer.t_val) == (0.0, 100)


@pytest.mark.parametrize("hidden_size, gamma", [(40, 1.0), (5, 40.0)], ids=["paper-40", "small-text-gamma"])
def test_forward_is_eq7_with_state_carried(hidden_size, gamma):
    torch.manual_seed(3)
    net = ScheduleNet(hidden_size, gamma).double()
    losses = [2.3, 1.7, 0.4]
    expected = eq7_by_hand(net, losses)
    for loss, (rate, h, c) in zip(losses, expected):
        got = net.advance(torch.tensor(loss, dtype=torch.float64))
        assert 0 < float(got) < gamma
        torch.testing.assert_close(float(got), rate, rtol=1e-12, atol=0)
        torch.testing.assert_close(net.h, h, rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(net.c, c, rtol=1e-12, atol=1e-15)
    assert "h" in net.state_dict() and "c" in net.state_dict()


def test_forward_does_not_move_the_state_but_advance_does():
    net = tiny_net(1)
    before = net.h.clone()
    net(torch.tensor(1.0, dtype=torch.float64), net.state())
    assert torch.equal(net.h, before)
    net.advance(torch.tensor(1.0))
    assert not torch.equal(net.h, before)


@pytest.mark.parametrize(
    "momentum, weight_decay, warm_steps",
    [(0.0, 0.0, 0), (0.9, 5e-4, 2)],
    ids=["eq10-plain-sgd", "momentum-and-decay"],
)
def test_meta_gradient_matches_finite_differences(momentum, weight_decay, warm_steps):
    trainer = MLRSNetTrainer(
        tiny_model(0), tiny_net(1), t_val=1000, momentum=momentum, weight_decay=weight_decay
    )
    for k in range(warm_steps):  # fills the momentum buffer and moves the net's state off zero
        trainer.step(*batch(10 + k), meta_batch_fn=lambda: pytest.fail("no meta step expected"))
    (x, y), (xm, ym) = batch(1), batch(2)
    params = list(trainer.net.parameters())
    grads = torch.autograd.grad(trainer.meta_loss(x, y, xm, ym), params)
    eps = 1e-6
    for p, g in zip(params, grads):
        flat_p, flat_g = p.data.view(-1), g.reshape(-1)
        for k in range(flat_p.numel()):
            flat_p[k] += eps
            up = float(trainer.meta_loss(x, y, xm, ym).detach())
            flat_p[k] -= 2 * eps
            down = float(trainer.meta_loss(x, y, xm, ym).detach())
            flat_p[k] += eps
            assert abs((up - down) / (2 * eps) - float(flat_g[k])) <= 1e-7 + 1e-5 * abs(float(flat_g[k]))
    assert any(bool(g.abs().max() > 1e-6) for g in grads)  # the check above is not vacuous


def test_meta_step_updates_net_with_adam_then_model_with_the_updated_rate():
    trainer = MLRSNetTrainer(
        tiny_model(0), tiny_net(1), meta_lr=0.05, t_val=1, momentum=0.0, weight_decay=0.0
    )
    (x, y), (xm, ym) = batch(1), batch(2)
    expected_net = copy.deepcopy(trainer.net)
    adam = torch.optim.Adam(expected_net.parameters(), lr=0.05, weight_decay=1e-4)
    for p, g in zip(
        expected_net.parameters(),
        torch.autograd.grad(trainer.meta_loss(x, y, xm, ym), list(trainer.net.parameters())),
    ):
        p.grad = g
    adam.step()
    model_before = [p.detach().clone() for p in trainer.model.parameters()]
    train_grads = torch.autograd.grad(F.cross_entropy(trainer.model(x), y), list(trainer.model.parameters()))
    with torch.no_grad():
        rate = float(expected_net.advance(F.cross_entropy(trainer.model(x), y)))

    trainer.step(x, y, meta_batch_fn=lambda: (xm, ym))

    for got, want in zip(trainer.net.parameters(), expected_net.parameters()):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(trainer.net.h, expected_net.h, rtol=1e-12, atol=1e-14)  # advanced once
    assert trainer.current_lr == pytest.approx(rate, rel=1e-12)
    for p, before, g in zip(trainer.model.parameters(), model_before, train_grads):
        torch.testing.assert_close(p.detach(), before - rate * g, rtol=1e-12, atol=1e-14)


def test_net_learns_only_every_t_val_steps():
    trainer = MLRSNetTrainer(tiny_model(0), tiny_net(1), meta_lr=0.05, t_val=3)
    calls = []

    def meta_batch():
        calls.append(trainer.steps)
        return batch(99)

    snapshots = []
    for k in range(6):
        trainer.step(*batch(k), meta_batch_fn=meta_batch)
        snapshots.append(trainer.net.w3.weight.detach().clone())
    assert calls == [2, 5]  # Algorithm 1's steps t_val, 2 t_val (0-based 2 and 5)
    assert torch.equal(snapshots[0], snapshots[1])
    assert not torch.equal(snapshots[1], snapshots[2])
    assert torch.equal(snapshots[2], snapshots[4])


def make_trainer(kind: str, seed: int):
    if kind == "meta-train":
        return MLRSNetTrainer(tiny_model(seed), tiny_net(seed + 1), meta_lr=0.05, t_val=2, momentum=0.9)
    return MLRSNetSGD(tiny_model(seed), tiny_net(seed + 1), momentum=0.9)


def run_step(trainer, k: int) -> None:
    if isinstance(trainer, MLRSNetTrainer):
        trainer.step(*batch(k), meta_batch_fn=lambda: batch(100 + k))
    else:
        trainer.step(*batch(k))


@pytest.mark.parametrize("kind", ["meta-train", "meta-test"])
def test_resume_from_a_checkpoint_is_exact(kind):
    straight = make_trainer(kind, 0)
    for k in range(3):
        run_step(straight, k)
    saved = io.BytesIO()
    torch.save(straight.state_dict(), saved)
    for k in range(3, 7):
        run_step(straight, k)

    resumed = make_trainer(kind, 5)  # different initial weights, all overwritten by the load
    saved.seek(0)
    resumed.load_state_dict(torch.load(saved, weights_only=True))
    for k in range(3, 7):
        run_step(resumed, k)

    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
    for (name, a), (_, b) in zip(straight.net.state_dict().items(), resumed.net.state_dict().items()):
        assert torch.equal(a, b), name
    assert straight.current_lr == resumed.current_lr and straight.steps == resumed.steps == 7


def test_meta_test_net_is_frozen_and_drives_sgd():
    net = tiny_net(1)
    weights_before = copy.deepcopy(net.state_dict())
    trainer = MLRSNetSGD(tiny_model(0), net, weight_decay=1e-2)
    x, y = batch(3)
    params_before = [p.detach().clone() for p in trainer.model.parameters()]
    grads = torch.autograd.grad(F.cross_entropy(trainer.model(x), y), list(trainer.model.parameters()))
    rate, _ = copy.deepcopy(net)(F.cross_entropy(trainer.model(x), y).detach(), net.state())
    trainer.step(x, y)
    assert all(not p.requires_grad for p in net.parameters())
    for name, tensor in net.named_parameters():
        assert torch.equal(tensor, weights_before[name])
    assert not torch.equal(net.h, weights_before["h"])  # only the hidden state moved
    for p, before, g in zip(trainer.model.parameters(), params_before, grads):
        torch.testing.assert_close(
            p.detach(), before - float(rate) * (g + 1e-2 * before), rtol=1e-12, atol=1e-14
        )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_saved_net_round_trips(tmp_path, dtype):
    net = ScheduleNet(hidden_size=6, gamma=3.0).to(dtype)
    net.advance(torch.tensor(1.5))  # a hidden state that must not travel
    path = tmp_path / "net.pt"
    save_schedule_net(net, path)
    torch.load(path, weights_only=True)  # loadable without unpickling code
    loaded = load_schedule_net(path)
    assert loaded.config() == {"hidden_size": 6, "gamma": 3.0}
    for (name, a), (_, b) in zip(net.named_parameters(), loaded.named_parameters()):
        assert torch.equal(a, b) and a.dtype == b.dtype, name
    assert not loaded.h.any() and not loaded.c.any()
    net.reset_state()
    for loss in (2.0, 1.0, 0.5):
        assert torch.equal(net.advance(torch.tensor(loss)), loaded.advance(torch.tensor(loss)))


def _saved_and_edited(edit):
    """A file written by save_schedule_net, then tampered with by ``edit``."""

    def make(path: Path) -> None:
        save_schedule_net(ScheduleNet(hidden_size=4), path)
        saved = torch.load(path, weights_only=True)
        edit(saved)
        torch.save(saved, path)

    return make


def _drop_key(saved):
    del saved["weights"]["w3.bias"]


def _add_key(saved):
    saved["weights"]["w4.weight"] = torch.zeros(1)


def _wrong_hidden(saved):
    saved["config"]["hidden_size"] = 5


@pytest.mark.parametrize(
    "write, message",
    [
        (lambda path: None, "does not exist"),
        (lambda path: path.write_bytes(b"not a torch file"), "cannot be read"),
        (lambda path: path.write_text("root:x:0:0:root:/root:/bin/bash\n" * 20), "not a torch file, or is corrupt"),
        (lambda path: path.write_bytes(b""), "empty or cut short"),
        (lambda path: torch.save(ScheduleNet(4), path), "not a file of tensors"),  # a pickled module
        (lambda path: torch.save(ScheduleNet(4).state_dict(), path), "not a saved MLR-SNet"),
        (_saved_and_edited(_drop_key), "missing w3.bias"),
        (_saved_and_edited(_add_key), "unexpected w4.weight"),
        (_saved_and_edited(_wrong_hidden), "expected (5, 5) for hidden_size 5"),
    ],
    ids=[
        "missing-file",
        "not-torch",
        "text-file",
        "empty",
        "pickled-module",
        "bare-state-dict",
        "missing-key",
        "extra-key",
        "wrong-shape",
    ],
)
def test_bad_net_file_is_one_clear_line(tmp_path, write, message):
    path = tmp_path / "net.pt"
    write(path)
    with pytest.raises(ValueError) as caught:
        load_schedule_net(path)
    text = str(caught.value)
    assert message in text and str(path) in text and "\n" not in text
