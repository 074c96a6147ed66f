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
        self._host_prior = (_log(theta) + uniform, _log(1.0 - theta) + uniform)  # constants of the recursion
        log_prior = torch.tensor([[value] for value in self._host_prior], dtype=torch.float64)
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
            self._update_on_host(log_likelihoods.detach().tolist())
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

    def _update_on_host(self, log_likelihoods: list[float]) -> None:
        """The same recursion in Python floats, for CPU training.

        Right after a training step, each of a dozen tiny tensor ops costs tens of
        microseconds (the step's large kernels have evicted the dispatcher's code from
        the caches); plain floats do the whole update in a fraction of that.
        """
        state = self.log_weights.numpy()  # shares memory with the buffer
        log_wa, log_wb = state.tolist()
        log_p = [p if -math.inf < p < math.inf else _LOG_VANISHING for p in log_likelihoods]
        log_wa = [w + p for w, p in zip(log_wa, log_p)]
        log_wb = [w + p for w, p in zip(log_wb, log_p)]
        log_switch = -math.log1p(self.steps)
        log_stay = math.log(self.steps) + log_switch
        log_pool = _logsumexp(log_wa) + log_switch
        prior_a, prior_b = self._host_prior
        to_a, to_b = log_pool + prior_a, log_pool + prior_b
        log_wa = [_logaddexp(w + log_stay, to_a) for w in log_wa]
        log_wb = [_logaddexp(w, to_b) for w in log_wb]
        total = _logsumexp(log_wa + log_wb)
        state[0] = log_wa = [w - total for w in log_wa]
        state[1] = log_wb = [w - total for w in log_wb]
        log_posterior = [_logaddexp(a, b) for a, b in zip(log_wa, log_wb)]
        if self.log_posterior.device.type == "cpu" and self.log_posterior.dtype in _NUMPY_DTYPES:
            self.log_posterior.numpy()[:] = log_posterior
        else:  # the posterior lives on MPS, or in a dtype numpy lacks (bfloat16)
            self.log_posterior.copy_(torch.tensor(log_posterior, dtype=self.log_posterior.dtype))

    def get_extra_state(self) -> dict:
        return {"steps": self.steps}

    def set_extra_state(self, state: dict) -> None:
        self.steps = int(state["steps"])


# The buffers that hold the recursion's state: float64 wherever the model goes.
_FLOAT64_STATE = ("log_prior", "log_weights")
_NUMPY_DTYPES = (torch.float16, torch.float32, torch.float64)

# A diverged copy's log-likelihood: so small that it never matters, yet finite, so the
# weights stay finite even if every copy diverged at once.
_LOG_VANISHING = -1e30


def _log(x: float) -> float:
    return math.log(x) if x > 0 else -math.inf


def _logsumexp(values: list[float]) -> float:
    top = max(values)
    if top == -math.inf:
        return top
    return top + math.log(math.fsum(math.exp(v - top) for v in values))


def _logaddexp(a: float, b: float) -> float:
    top = max(a, b)
    if top == -math.inf:
        return top
    return top + math.log1p(math.exp(-abs(a - b)))
