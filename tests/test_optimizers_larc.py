"""LARS (scale mode) and LARC (clip mode) against their update written out by hand."""

from __future__ import annotations

import pytest
import torch

from alrao_cli.optimizers import LARC

F64 = torch.float64
W0 = torch.tensor([[3.0, 4.0], [0.0, 1.0]], dtype=F64)
AW = torch.tensor([[1.0, 0.5], [2.0, 1.0]], dtype=F64)
CB = torch.tensor([0.3, -0.4], dtype=F64)  # f = 0.5 * sum(AW * W^2) + sum(CB * b) + 0.5 * sum(b^2)


def loss(w, b):
    return 0.5 * (AW * w**2).sum() + (CB * b).sum() + 0.5 * (b**2).sum()


def hand_reference(mode: str, lr: float, momentum: float, wd: float, eta: float, eps: float, steps: int):
    """Weights, bias and local rates after each step, the trust ratio computed by hand."""
    w, b = W0.clone(), torch.zeros(2, dtype=F64)  # the bias starts at zero: norm 0
    buf_w = buf_b = None
    history = []
    for _ in range(steps):
        locals_ = []
        new = []
        for p, g, buf in ((w, AW * w, buf_w), (b, CB + b, buf_b)):
            w_norm, g_norm = float(p.pow(2).sum().sqrt()), float(g.pow(2).sum().sqrt())
            if w_norm == 0 or g_norm == 0:
                local = lr  # nothing to measure a trust ratio with
            else:
                trust = eta * w_norm / (g_norm + wd * w_norm + eps)
                local = lr * trust if mode == "scale" else min(trust, lr)
            d = (g + wd * p) * (local / lr)
            buf = d if buf is None else momentum * buf + d
            new.append((p - lr * buf, buf))
            locals_.append(local)
        (w, buf_w), (b, buf_b) = new
        history.append((w, b, locals_))
    return history


@pytest.mark.parametrize(
    "mode, eta",
    [("scale", 0.02), ("clip", 0.02), ("clip", 5.0)],
    ids=["lars-scale", "larc-clip-active", "larc-clip-inactive"],
)
def test_three_steps_match_the_hand_reference(mode, eta):
    lr, momentum, wd, eps = 0.1, 0.9, 0.01, 1e-8
    w, b = torch.nn.Parameter(W0.clone()), torch.nn.Parameter(torch.zeros(2, dtype=F64))
    optimizer = LARC([w, b], lr=lr, momentum=momentum, weight_decay=wd, trust_coefficient=eta, mode=mode, eps=eps)
    want = hand_reference(mode, lr, momentum, wd, eta, eps, 3)
    for step in range(3):
        optimizer.zero_grad()
        loss(w, b).backward()
        optimizer.step()
        ref_w, ref_b, ref_locals = want[step]
        torch.testing.assert_close(w.detach(), ref_w, rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(b.detach(), ref_b, rtol=1e-12, atol=1e-15)
        assert optimizer.local_lrs()[0] == pytest.approx(ref_locals, rel=1e-12)
    first_locals = want[0][2]
    assert first_locals[1] == lr  # the zero bias kept the global rate
    last_locals = optimizer.local_lrs()[0]
    if mode == "scale":
        assert last_locals[0] < lr  # a small eta slows the weight down...
    elif eta < 1:
        assert max(last_locals) <= lr and min(last_locals) < lr  # ...and clipping only ever lowers it
    else:
        assert last_locals == [lr, lr]  # trust ratio above lr everywhere: plain SGD


def test_clip_mode_without_a_binding_trust_ratio_is_torch_sgd():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    twin = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    twin.load_state_dict(model.state_dict())
    x, y = torch.randn(16, 3), torch.randn(16, 1)
    larc = LARC(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-3, trust_coefficient=1e6)
    sgd = torch.optim.SGD(twin.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-3)
    for _ in range(4):
        for net, optimizer in ((model, larc), (twin, sgd)):
            optimizer.zero_grad()
            ((net(x) - y) ** 2).mean().backward()
            optimizer.step()
    for p, q in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(p, q)


def test_no_momentum_keeps_no_buffer():
    w = torch.nn.Parameter(W0.clone())
    optimizer = LARC([w], lr=0.1, momentum=0.0, trust_coefficient=0.02, mode="scale")
    optimizer.zero_grad()
    (0.5 * (AW * w**2).sum()).backward()
    g = AW * W0
    trust = 0.02 * float(W0.norm()) / (float(g.norm()) + 1e-8)
    optimizer.step()
    assert "momentum_buffer" not in optimizer.state[w]
    torch.testing.assert_close(w.detach(), W0 - 0.1 * trust * g, rtol=1e-12, atol=0)


def test_local_rates_are_nan_before_the_first_step():
    optimizer = LARC([torch.nn.Parameter(torch.ones(2))], lr=0.1)
    assert torch.isnan(torch.tensor(optimizer.local_lrs()[0])).all()


@pytest.mark.parametrize(
    "kwargs",
    [{"mode": "lamb"}, {"momentum": 1.0}, {"trust_coefficient": 0.0}, {"weight_decay": -1.0}],
    ids=["unknown-mode", "momentum-one", "zero-trust", "negative-decay"],
)
def test_bad_arguments_are_refused(kwargs):
    with pytest.raises(ValueError):
        LARC([torch.nn.Parameter(torch.zeros(1))], lr=0.1, **kwargs)
