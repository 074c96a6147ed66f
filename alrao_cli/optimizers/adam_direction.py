"""Adam's update direction, shared by the hypergradient optimizers built on Adam.

Adam-HD (Baydin et al. 2018, Algorithm 3) and the Adam variant of the multi-level method
need the direction ``m_hat / (sqrt(v_hat) + eps)`` twice: to move the parameters now, and,
kept until the next step, as the derivative of the update with respect to the rate (the
hypergradient's second factor). Computing it in one place keeps the two optimizers on
exactly the same arithmetic.
"""

from __future__ import annotations

from torch import Tensor


def adam_directions(
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    steps: list[int],
    *,
    beta1: float,
    beta2: float,
    eps: float,
) -> list[Tensor]:
    """Update Adam's moments in place and return each tensor's direction.

    Kingma & Ba 2015, Algorithm 1: ``m = beta1 m + (1 - beta1) g``,
    ``v = beta2 v + (1 - beta2) g^2``, bias-corrected by ``1 - beta^t`` with ``t`` the
    tensor's own step count (already incremented for this step), and the direction
    ``m_hat / (sqrt(v_hat) + eps)``. The rate is left out: the caller multiplies by it.
    """
    directions = []
    for grad, exp_avg, exp_avg_sq, step in zip(grads, exp_avgs, exp_avg_sqs, steps):
        exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        m_hat = exp_avg / (1 - beta1**step)
        v_hat = exp_avg_sq / (1 - beta2**step)
        directions.append(m_hat / (v_hat.sqrt() + eps))
    return directions
