"""Switch model averaging over the output copies (van Erven, Grünwald & de Rooij).

Plain Bayesian model averaging is slow to hand the weight to a copy that becomes good
late (the "catch-up" phenomenon): early in training the fast copies are best, later the
slow ones. The switch puts its prior on *sequences* of copies instead: a switch after
observation t with probability 1/(t+1), a geometric number of switches (parameter
``theta``), a uniform choice of copy at each switch (paper, Appendix A).

Its posterior is computed online, exactly, with two weights per copy:
``wa_j`` (copy j is in use and a later switch is still possible) and ``wb_j`` (copy j is
in use and no switch will follow). Both are kept in log space, in float64, and
renormalised at every step, so they stay finite over any number of updates.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class Switch(nn.Module):
    """Posterior over ``n_models`` predictors under the switch prior.

    Use :attr:`posterior` (or :attr:`log_posterior`) to predict the next observation,
    then :meth:`update` with what each model gave that observation. The weights live in a
    buffer (row 0: ``log wa``, row 1: ``log wb``), so they follow ``.to(device)`` and are
    saved in the owning model's state dict, with the observation count as extra state.
    """

    def __init__(self, n_models: int, theta: float = 0.999) -> None:
        super().__init__()
        if n_models < 1:
            raise ValueError(f"n_models must be at least 1, got {n_models}")
        if not 0.0 <= theta <= 1.0:
            raise ValueError(f"theta must lie in [0, 1], got {theta}")
        self.n_models = n_models
        self.theta = theta
        self.steps = 0
        uniform = -math.log(n_models)
        # What a switch hands to each copy: theta/K to "may switch again", (1-theta)/K to "final".
        log_prior = torch.tensor([[_log(theta)], [_log(1.0 - theta)]], dtype=torch.float64) + uniform
        self.register_buffer("log_prior", log_prior, persistent=False)  # [2, 1]
        self.register_buffer("log_weights", log_prior.expand(2, n_models).clone())  # [2, N]
        # The log-posterior for the next prediction, kept in the working dtype so the
        # training step can add it to the copies' log-likelihoods without a conversion.
        self.register_buffer("log_posterior", torch.full((n_models,), uniform))

    @property
    def posterior(self) -> Tensor:
        """Weights ``a_j`` for the next prediction, ``[n_models]``, summing to 1 (float64)."""
        return torch.softmax(torch.logsumexp(self.log_weights, dim=0), dim=0)

    @torch.no_grad()
    def update(self, log_likelihoods: Tensor) -> None:
        """Account for one observation.

        ``log_likelihoods[j]`` is what model j gave the observation: for Alrao, copy j's
        *mean* log-likelihood over the minibatch (the convention of the paper's released
        code; the sum would make the posterior jump far faster). A non-finite value (a
        copy that diverged) counts as a vanishing probability.
        """
        log_p = torch.nan_to_num(
            log_likelihoods.detach().to(self.log_weights),
            nan=_LOG_VANISHING, posinf=_LOG_VANISHING, neginf=_LOG_VANISHING,
        )
        self.steps += 1
        log_w = self.log_weights
        log_w.add_(log_p)
        # P(switch after observation t | no switch yet) = 1 / (t + 1); the mass that
        # switches leaves the "may switch" row and is shared out by the prior.
        log_switch = -math.log1p(self.steps)
        log_pool = torch.logsumexp(log_w[0], dim=0) + log_switch
        log_w[0].add_(math.log(self.steps) + log_switch)
        torch.logaddexp(log_w, self.log_prior + log_pool, out=log_w)
        log_w.sub_(torch.logsumexp(log_w.view(-1), dim=0))
        torch.logsumexp(log_w, dim=0, out=self.log_posterior)

    def get_extra_state(self) -> dict:
        return {"steps": self.steps}

    def set_extra_state(self, state: dict) -> None:
        self.steps = int(state["steps"])


# A diverged copy's log-likelihood: so small that it never matters, yet finite, so the
# weights stay finite even if every copy diverged at once.
_LOG_VANISHING = -1e30


def _log(x: float) -> float:
    return math.log(x) if x > 0 else -math.inf
