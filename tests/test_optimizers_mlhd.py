"""Multi-level hypergradient descent against its update written out by hand."""

from __future__ import annotations

import pytest
import torch

from alrao_cli.optimizers import SGDHD, SGDMLHD, AdamMLHD

F64 = torch.float64
# f = 0.5 * sum(AW * W^2) + 0.5 * sum(AB * b^2): a 2x2 weight (two units) and a bias
AW = torch.tensor([[0.5, 1.5], [2.0, 0.25]], dtype=F64)
AB = torch.tensor([1.0, 3.0], dtype=F64)
W0 = torch.tensor([[1.0, -2.0], [0.5, 1.0]], dtype=F64)
B0 = torch.tensor([-1.0, 0.5], dtype=F64)


def hand_reference(adam: bool, steps: int, lr: float, beta: float, delta: float, gammas, b1=0.9, b2=0.999, eps=1e-8):
    """The method for the two tensors, one step at a time, in plain arithmetic."""
    w, b = W0.clone(), B0.clone()
    au_w, au_b = torch.full((2,), lr, dtype=F64), torch.full((2,), lr, dtype=F64)  # unit rates
    al_w, al_b, ag = lr, lr, lr  # layer and global rates
    gu, gl, gg = gammas
    dw_prev, db_prev = torch.zeros_like(w), torch.zeros_like(b)
    mw, vw, mb, vb = (torch.zeros_like(w), torch.zeros_like(w), torch.zeros_like(b), torch.zeros_like(b))
    history = []
    for t in range(1, steps + 1):
        gw, gb = AW * w, AB * b
        if adam:
            mw, vw = b1 * mw + (1 - b1) * gw, b2 * vw + (1 - b2) * gw**2
            mb, vb = b1 * mb + (1 - b1) * gb, b2 * vb + (1 - b2) * gb**2
            dw = (mw / (1 - b1**t)) / ((vw / (1 - b2**t)).sqrt() + eps)
            db = (mb / (1 - b1**t)) / ((vb / (1 - b2**t)).sqrt() + eps)
        else:
            dw, db = gw, gb
        # -hypergradients: per unit (row of W, element of b), per layer, global
        s_w, s_b = (gw * dw_prev).sum(1), gb * db_prev
        S_w, S_b = float(s_w.sum()), float(s_b.sum())
        S = S_w + S_b
        h_unit = float((au_w * s_w).sum() + (au_b * s_b).sum())
        h_layer = al_w * S_w + al_b * S_b
        h_global = ag * S
        # every level and weight moves from its previous value
        au_w, au_b = au_w + beta * gu * s_w, au_b + beta * gu * s_b
        al_w, al_b = al_w + beta * gl * S_w, al_b + beta * gl * S_b
        ag = ag + beta * gg * S
        raw = [gu + delta * h_unit, gl + delta * h_layer, gg + delta * h_global]
        gu, gl, gg = (x / sum(raw) for x in raw)
        rate_w = gu * au_w[:, None] + gl * al_w + gg * ag
        rate_b = gu * au_b + gl * al_b + gg * ag
        w, b = w - rate_w * dw, b - rate_b * db
        dw_prev, db_prev = dw, db
        history.append(dict(w=w, b=b, au_w=au_w, au_b=au_b, al_w=al_w, al_b=al_b, ag=ag, gammas=(gu, gl, gg)))
    return history


CASES = [
    (SGDMLHD, False, dict(lr=0.1, hyper_lr=0.05, combo_lr=0.5, gammas=(0.2, 0.3, 0.5))),
    (AdamMLHD, True, dict(lr=0.05, hyper_lr=0.01, combo_lr=0.2, gammas=(0.5, 0.25, 0.25))),
]


@pytest.mark.parametrize("optimizer_cls, adam, kwargs", CASES, ids=["sgd", "adam"])
def test_three_steps_match_the_hand_reference(optimizer_cls, adam, kwargs):
    w, b = torch.nn.Parameter(W0.clone()), torch.nn.Parameter(B0.clone())
    optimizer = optimizer_cls([w, b], **kwargs)
    want = hand_reference(
        adam, 3, kwargs["lr"], kwargs["hyper_lr"], kwargs["combo_lr"], kwargs["gammas"]
    )
    for step in range(3):
        optimizer.zero_grad()
        (0.5 * (AW * w**2).sum() + 0.5 * (AB * b**2).sum()).backward()
        optimizer.step()
        ref = want[step]
        close = dict(rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(w.detach(), ref["w"], **close)
        torch.testing.assert_close(b.detach(), ref["b"], **close)
        torch.testing.assert_close(optimizer.state[w]["unit_lr"], ref["au_w"], **close)
        torch.testing.assert_close(optimizer.state[b]["unit_lr"], ref["au_b"], **close)
        group = optimizer.param_groups[0]
        assert float(optimizer.state[w]["layer_lr"]) == pytest.approx(ref["al_w"], rel=1e-12)
        assert float(optimizer.state[b]["layer_lr"]) == pytest.approx(ref["al_b"], rel=1e-12)
        assert group["lr"] == pytest.approx(ref["ag"], rel=1e-12)
        assert group["gammas"] == pytest.approx(ref["gammas"], rel=1e-12)
    # the levels did separate: the two units of W no longer share a rate
    unit = optimizer.state[w]["unit_lr"]
    assert unit[0] != unit[1]
    assert sum(group["gammas"]) == pytest.approx(1.0)


def test_rates_report_layer_and_effective_rates():
    w, b = torch.nn.Parameter(W0.clone()), torch.nn.Parameter(B0.clone())
    unused = torch.nn.Parameter(torch.ones(3, dtype=F64))
    optimizer = SGDMLHD([w, b, unused], lr=0.1, hyper_lr=0.05, combo_lr=0.5, gammas=(0.2, 0.3, 0.5))
    for _ in range(3):
        optimizer.zero_grad()
        (0.5 * (AW * w**2).sum() + 0.5 * (AB * b**2).sum()).backward()
        optimizer.step()
    (group,) = optimizer.rates()
    ref = hand_reference(False, 3, 0.1, 0.05, 0.5, (0.2, 0.3, 0.5))[-1]
    gu, gl, gg = ref["gammas"]
    effective_w = gu * ref["au_w"] + gl * ref["al_w"] + gg * ref["ag"]
    assert group.global_lr == pytest.approx(ref["ag"], rel=1e-12)
    assert group.gammas == pytest.approx(ref["gammas"], rel=1e-12)
    assert group.tensors[0].layer_lr == pytest.approx(ref["al_w"], rel=1e-12)
    assert group.tensors[0].effective_mean == pytest.approx(float(effective_w.mean()), rel=1e-12)
    assert group.tensors[0].effective_min == pytest.approx(float(effective_w.min()), rel=1e-12)
    assert group.tensors[0].effective_max == pytest.approx(float(effective_w.max()), rel=1e-12)
    assert group.tensors[2].effective_mean == group.global_lr  # no gradient yet: all levels at the global rate


def test_global_level_alone_is_sgd_hd():
    """With all weight on the global rate and fixed weights, the method is SGD-HD."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).double()
    twin = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).double()
    twin.load_state_dict(model.state_dict())
    x, y = torch.randn(16, 3, dtype=F64), torch.randn(16, 1, dtype=F64)
    multi = SGDMLHD(model.parameters(), lr=0.1, hyper_lr=0.01, combo_lr=0.0, gammas=(0.0, 0.0, 1.0))
    single = SGDHD(twin.parameters(), lr=0.1, hyper_lr=0.01)
    for _ in range(5):
        for net, optimizer in ((model, multi), (twin, single)):
            optimizer.zero_grad()
            ((net(x) - y) ** 2).mean().backward()
            optimizer.step()
    assert multi.param_groups[0]["lr"] == pytest.approx(single.current_lrs()[0], rel=1e-12)
    assert multi.param_groups[0]["lr"] != 0.1
    for p, q in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-15)


def test_conv_units_are_output_channels_and_scalars_are_one_unit():
    conv = torch.nn.Conv1d(2, 3, kernel_size=2)
    scale = torch.nn.Parameter(torch.tensor(1.5))
    optimizer = SGDMLHD([*conv.parameters(), scale], lr=0.01, hyper_lr=1.0)
    x = torch.randn(4, 2, 5)
    for _ in range(2):
        optimizer.zero_grad()
        (conv(x) * scale).pow(2).mean().backward()
        optimizer.step()
    assert optimizer.state[conv.weight]["unit_lr"].shape == (3,)
    assert optimizer.state[conv.bias]["unit_lr"].shape == (3,)
    assert optimizer.state[scale]["unit_lr"].shape == (1,)
    assert not torch.equal(optimizer.state[conv.weight]["unit_lr"], torch.full((3,), 0.01))


@pytest.mark.parametrize(
    "kwargs",
    [{"gammas": (0.5, 0.5)}, {"gammas": (1.0, -0.5, 0.5)}, {"combo_lr": -1.0}, {"lr": 0.0}],
    ids=["two-gammas", "negative-gamma", "negative-combo-lr", "zero-lr"],
)
def test_bad_arguments_are_refused(kwargs):
    with pytest.raises(ValueError):
        SGDMLHD([torch.nn.Parameter(torch.zeros(1))], **kwargs)


def test_initial_gammas_are_normalised():
    optimizer = SGDMLHD([torch.nn.Parameter(torch.zeros(1))], gammas=(1.0, 1.0, 2.0))
    assert optimizer.param_groups[0]["gammas"] == (0.25, 0.25, 0.5)
