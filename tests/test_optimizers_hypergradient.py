"""SGD-HD and Adam-HD against their algorithms written out by hand (Baydin et al. 2018)."""

from __future__ import annotations

import pytest
import torch

from alrao_cli.optimizers import SGDHD, AdamHD

A = torch.tensor([0.5, 2.0], dtype=torch.float64)  # f(theta) = 0.5 * sum(A * theta^2): grad = A * theta
THETA0 = torch.tensor([1.0, -2.0], dtype=torch.float64)


def train(optimizer_cls, steps: int, **kwargs) -> tuple[list[torch.Tensor], list[float]]:
    """Parameters and rate after each of ``steps`` steps on the quadratic."""
    theta = torch.nn.Parameter(THETA0.clone())
    optimizer = optimizer_cls([theta], **kwargs)
    thetas, lrs = [], []
    for _ in range(steps):
        optimizer.zero_grad()
        (0.5 * A * theta**2).sum().backward()
        optimizer.step()
        thetas.append(theta.detach().clone())
        lrs.append(optimizer.current_lrs()[0])
    return thetas, lrs


def test_sgd_hd_matches_three_steps_by_hand():
    alpha0, beta = 0.1, 0.01
    thetas, lrs = train(SGDHD, 3, lr=alpha0, hyper_lr=beta)

    g1 = A * THETA0
    alpha1 = alpha0  # no previous gradient: h_1 = 0
    theta1 = THETA0 - alpha1 * g1
    g2 = A * theta1
    alpha2 = alpha1 + beta * float((g2 * g1).sum())  # alpha_t = alpha_{t-1} + beta g_t . g_{t-1}
    theta2 = theta1 - alpha2 * g2
    g3 = A * theta2
    alpha3 = alpha2 + beta * float((g3 * g2).sum())
    theta3 = theta2 - alpha3 * g3

    assert lrs == pytest.approx([alpha1, alpha2, alpha3], rel=1e-12)
    assert alpha2 > alpha1  # successive gradients agree here: the rate grows
    for got, want in zip(thetas, [theta1, theta2, theta3]):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=0)


def test_adam_hd_matches_three_steps_by_hand():
    alpha0, beta, (b1, b2), eps = 0.05, 0.002, (0.9, 0.999), 1e-8
    thetas, lrs = train(AdamHD, 3, lr=alpha0, hyper_lr=beta, betas=(b1, b2), eps=eps)

    # step 1: u_0 = 0 so the rate stays
    g1 = A * THETA0
    m1, v1 = (1 - b1) * g1, (1 - b2) * g1**2
    d1 = (m1 / (1 - b1)) / ((v1 / (1 - b2)).sqrt() + eps)
    alpha1 = alpha0
    theta1 = THETA0 - alpha1 * d1
    # step 2: h_2 = g_2 . (-d_1), alpha_2 = alpha_1 - beta h_2, then the moments
    g2 = A * theta1
    alpha2 = alpha1 + beta * float((g2 * d1).sum())
    m2, v2 = b1 * m1 + (1 - b1) * g2, b2 * v1 + (1 - b2) * g2**2
    d2 = (m2 / (1 - b1**2)) / ((v2 / (1 - b2**2)).sqrt() + eps)
    theta2 = theta1 - alpha2 * d2
    # step 3
    g3 = A * theta2
    alpha3 = alpha2 + beta * float((g3 * d2).sum())
    m3, v3 = b1 * m2 + (1 - b1) * g3, b2 * v2 + (1 - b2) * g3**2
    d3 = (m3 / (1 - b1**3)) / ((v3 / (1 - b2**3)).sqrt() + eps)
    theta3 = theta2 - alpha3 * d3

    assert lrs == pytest.approx([alpha1, alpha2, alpha3], rel=1e-12)
    assert alpha2 != alpha1
    for got, want in zip(thetas, [theta1, theta2, theta3]):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=0)


def test_rate_is_one_per_group_and_groups_adapt_separately():
    fast = torch.nn.Parameter(torch.tensor([1.0, -1.0]))
    idle = torch.nn.Parameter(torch.tensor([1.0]))
    optimizer = SGDHD([{"params": [fast]}, {"params": [idle], "lr": 0.2}], lr=0.1, hyper_lr=0.01)
    for _ in range(3):
        optimizer.zero_grad()
        (fast**2).sum().backward()  # idle gets no gradient: its group is skipped
        optimizer.step()
    lr_fast, lr_idle = optimizer.current_lrs()
    assert lr_fast != 0.1
    assert lr_idle == 0.2


@pytest.mark.parametrize(
    "optimizer_cls, kwargs",
    [
        (SGDHD, {"lr": 0.0}),
        (SGDHD, {"hyper_lr": -1.0}),
        (AdamHD, {"betas": (0.9, 1.0)}),
    ],
    ids=["zero-lr", "negative-hyper-lr", "beta2-one"],
)
def test_bad_arguments_are_refused(optimizer_cls, kwargs):
    with pytest.raises(ValueError):
        optimizer_cls([torch.nn.Parameter(torch.zeros(1))], **kwargs)
