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

The float64 state stays float64 whatever the model is cast to (``.half()``,
``.to(torch.bfloat16)``): in float16 the vanishing log-likelihood of a diverged copy
becomes ``-inf`` and the posterior NaN. On a device that cannot hold float64 (Apple's
MPS), the state stays on the CPU and is updated there; only the posterior used by the
training step lives on the device.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


# Device types with no float64 tensors: MPS refuses them (pytorch/pytorch#122602).
_NO_FLOAT64 = frozenset({"mps"})


def state_device(model_device: torch.device | str) -> torch.device:
    """Where the switch keeps its float64 state when the model is on ``model_device``.

    With the model, so that an accelerator updates it without a host synchronisation;
    on the CPU where the device cannot hold float64, since float32 would not keep the
    recursion exact over millions of steps.
    """
    model_device = torch.device(model_device)
    return torch.device("cpu") if model_device.type in _NO_FLOAT64 else model_device


class Switch(nn.Module):
    """Posterior over ``n_models`` predictors under the switch prior.

    Use :attr:`posterior` (or :attr:`log_posterior`) to predict the next observation,
    then :meth:`update` with what each model gave that observation. The weights live in a
    float64 buffer (row 0: ``log wa``, row 1: ``log wb``), saved in the owning model's
    state dict with the observation count as extra state. They follow ``.to(device)``
    (to the CPU when the device has no float64, see :func:`state_device`) but not dtype
    casts; :attr:`log_posterior` follows both, like any buffer.
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
        self._share_a, self._share_b = theta / n_models, (1.0 - theta) / n_models  # the same, as floats
        self.register_buffer("log_prior", log_prior, persistent=False)  # [2, 1]
        self.register_buffer("log_weights", log_prior.expand(2, n_models).clone())  # [2, N]
        # The log-posterior for the next prediction, kept in the working dtype so the
        # training step can add it to the copies' log-likelihoods without a conversion.
        self.register_buffer("log_posterior", torch.full((n_models,), uniform))

    def _apply(self, fn, recurse=True):
        """Convert the buffers for ``.to()``, ``.cuda()``, ``.half()``... keeping the state float64.

        :attr:`log_posterior` converts as usual; the float64 state goes to the device the
        posterior went to (see :func:`state_device`) and refuses any other dtype.
        """
        for name, buffer in self._buffers.items():
            if name not in _FLOAT64_STATE and buffer is not None:
                self._buffers[name] = fn(buffer)
        target = self.log_posterior.device
        home = state_device(target)
        for name in _FLOAT64_STATE:
            state = self._buffers[name]
            # fn itself would fail on a device without float64, or downcast the state
            converted = fn(state) if home == target else state
            if converted.dtype != torch.float64 or converted.device != home:
                converted = state.to(device=home)
            self._buffers[name] = converted
        return self

    @property
    def posterior(self) -> Tensor:
        """Weights ``a_j`` for the next prediction, ``[n_models]``, summing to 1 (float64).

        On the device of the state, which is the CPU when the model is on MPS.
        """
        return torch.softmax(torch.logsumexp(self.log_weights, dim=0), dim=0)

    @torch.no_grad()
    def update(self, log_likelihoods: Tensor) -> None:
        """Account for one observation.

        ``log_likelihoods[j]`` is what model j gave the observation: for Alrao, copy j's
        *mean* log-likelihood over the minibatch (the convention of the paper's released
        code; the sum would make the posterior jump far faster). A non-finite value (a
        copy that diverged) counts as a vanishing probability.
        """
        self.steps += 1
        if self.log_weights.device.type == "cpu":  # a CPU model, or one on MPS (a host copy)
            self._update_on_host(log_likelihoods.detach())
        else:
            self._update_on_device(log_likelihoods.detach())

    def _update_on_device(self, log_likelihoods: Tensor) -> None:
        """The recursion in tensor ops: no host sync, for accelerators."""
        log_p = torch.nan_to_num(
            log_likelihoods.to(self.log_weights),
            nan=_LOG_VANISHING, posinf=_LOG_VANISHING, neginf=_LOG_VANISHING,
        )
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

    def _update_on_host(self, log_likelihoods: Tensor) -> None:
        """The same recursion in Python floats, for CPU training (and the host copy of MPS).

        Right after a training step, the step's large kernels have evicted everything
        else from the caches: a tiny tensor op then costs tens of microseconds, and so
        does a numpy ufunc. Python arithmetic on ten floats does not. To need few calls,
        the weights leave log space relative to the largest one (so that none overflows),
        mix linearly and are logged back; a row that receives no switched mass
        (``theta`` = 0 or 1) stays in log space, exactly, whatever underflows.
        """
        log_p = [p if -math.inf < p < math.inf else _LOG_VANISHING for p in log_likelihoods.tolist()]
        state = self.log_weights.numpy()  # shares memory with the buffer, [2, N]
        log_wa, log_wb = ([w + p for w, p in zip(row, log_p)] for row in state.tolist())
        top = max(max(log_wa), max(log_wb))
        wa = [math.exp(w - top) for w in log_wa]  # the largest is 1
        wb = [math.exp(w - top) for w in log_wb]
        # P(switch after observation t | no switch yet) = 1 / (t + 1); the mass that
        # switches leaves the "may switch" row and is shared out by the prior.
        pool = math.fsum(wa) / (self.steps + 1)
        stay = self.steps / (self.steps + 1)
        gain_a, gain_b = pool * self._share_a, pool * self._share_b
        if gain_a > 0:
            wa = [w * stay + gain_a for w in wa]
            log_wa = [math.log(w) for w in wa]  # relative to top, from here on
        else:
            wa = [w * stay for w in wa]
            log_wa = [w - top + math.log(stay) for w in log_wa]
        if gain_b > 0:
            wb = [w + gain_b for w in wb]
            log_wb = [math.log(w) for w in wb]
        else:
            log_wb = [w - top for w in log_wb]
        log_total = math.log(math.fsum(wa) + math.fsum(wb))  # at least 1/2: the top weight stayed
        log_wa = [w - log_total for w in log_wa]
        log_wb = [w - log_total for w in log_wb]
        state[:] = (log_wa, log_wb)
        log_posterior = [
            math.log(a + b) - log_total if a + b > 0 else _logaddexp(la, lb)
            for a, b, la, lb in zip(wa, wb, log_wa, log_wb)
        ]
        try:
            self.log_posterior.numpy()[:] = log_posterior
        except TypeError:  # the posterior lives on MPS, or in a dtype numpy lacks (bfloat16)
            self.log_posterior.copy_(torch.tensor(log_posterior, dtype=self.log_posterior.dtype))

    def get_extra_state(self) -> dict:
        return {"steps": self.steps}

    def set_extra_state(self, state: dict) -> None:
        self.steps = int(state["steps"])


# The buffers that hold the recursion's state: float64 wherever the model goes.
_FLOAT64_STATE = ("log_prior", "log_weights")

# A diverged copy's log-likelihood: so small that it never matters, yet finite, so the
# weights stay finite even if every copy diverged at once.
_LOG_VANISHING = -1e30


def _log(x: float) -> float:
    return math.log(x) if x > 0 else -math.inf


def _logaddexp(a: float, b: float) -> float:
    top = max(a, b)
    if top == -math.inf:
        return top
    return top + math.log1p(math.exp(-abs(a - b)))
