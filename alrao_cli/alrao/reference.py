"""Slow, obviously correct versions of Alrao's fast paths: what the tests compare them with.

As facebookresearch/schedule_free keeps a plain ``*_reference.py`` beside each fast
optimizer, this module says what the fast code of this package computes, written the
plainest way there is, with no concern for speed or memory:

- :func:`switch_posteriors`: the switch posterior by enumerating every switch sequence
  of a short run, in plain probabilities (the production :class:`~alrao_cli.alrao.switch.Switch`
  is an online recursion in log space);
- :func:`two_path_loss`: the Alrao loss as two linear maps per copy, one with the copies'
  weights detached and one with the features detached, differentiated by plain autograd
  (the production ``_AlraoHeadLoss`` computes both paths with one product and routes the
  gradients by hand);
- :func:`feature_rates`: the per-feature rates drawn one feature at a time and written
  into a rate per scalar weight (the production sampler draws a layer's rates at once
  and shapes them to broadcast);
- :func:`sgd_step` and :func:`adam_step`: AlraoSGD's and AlraoAdam's updates, one
  parameter at a time, out of place (the production optimizers use ``torch._foreach_*``).

Nothing here is on a training path, and nothing here imports the fast code it checks.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# -- the switch: every switch sequence, enumerated -------------------------------------


@dataclass(frozen=True, slots=True)
class SwitchSequence:
    """The start of a switch sequence over a run of ``n_steps`` observations.

    ``switch_points[l]`` is the observation after which segment ``l`` starts (0 for the
    first segment); segment ``l`` predicts observations ``switch_points[l] + 1`` up to the
    next switch point with copy ``copies[l]``. ``prior`` is the prior mass of every
    infinite sequence that begins this way and makes no other switch before the run ends.
    """

    switch_points: tuple[int, ...]
    copies: tuple[int, ...]
    prior: float

    def copy_at(self, observation: int) -> int:
        """The copy that predicts ``observation`` (1-based)."""
        segment = sum(1 for point in self.switch_points if point < observation) - 1
        return self.copies[segment]


def switch_time_prior(time: int) -> float:
    """``pi_T(t) = 1 / (t (t + 1))``, the prior on switch times (paper, Appendix A), ``t >= 1``."""
    return 1.0 / (time * (time + 1))


def switch_time_tail(time: int) -> float:
    """``pi_T(T > t)``: the prior mass of the switch times after ``time``, ``time >= 0``.

    Summed the long way, as one minus the mass of the times up to ``time`` (``pi_T``
    sums to one), rather than by its closed form ``1 / (t + 1)``.
    """
    return 1.0 - math.fsum(switch_time_prior(u) for u in range(1, time + 1))


def switch_sequences(
    n_steps: int, n_copies: int, theta: float, *, first_time: int = 0
) -> Iterator[SwitchSequence]:
    """Every way a switch sequence can begin over ``n_steps`` observations, with its prior.

    The prior is the paper's (Appendix A, eq. 7): ``L`` segments with probability
    ``theta^(L-1) (1 - theta)``, each segment's copy uniform over ``n_copies``, and each
    segment's time ``t_l`` drawn from ``pi_T(t) = 1/(t(t+1))`` conditioned on
    ``t_l > t_(l-1)``. A segment that starts after observation ``s`` has the time
    ``s + first_time``:

    - ``first_time = 0``: the time is the observation after which the switch happens (the
      first segment's time is 0). This is the recursion of van Erven et al.'s Algorithm 1
      and of the paper's released code: a switch after observation ``t`` with probability
      ``1/(t+1)``. It is what :class:`~alrao_cli.alrao.switch.Switch` computes.
    - ``first_time = 1``: the time is the segment's first observation, with ``t_1 = 1`` as
      printed in the paper's eq. (7); a switch after observation ``t`` then has
      probability ``1/(t+2)``.

    The sequences that make no further switch within the run are merged: a final last
    segment (``1 - theta``), or a further segment whose time comes after the run.
    """
    last_time = n_steps + first_time
    for n_switches in range(n_steps + 1):
        for points in itertools.combinations(range(1, n_steps + 1), n_switches):
            switch_points = (0,) + points
            times = [point + first_time for point in switch_points]
            mass = theta**n_switches / n_copies ** len(times)
            for before, time in itertools.pairwise(times):
                mass *= switch_time_prior(time) / switch_time_tail(before)
            no_switch_in_run = switch_time_tail(last_time) / switch_time_tail(times[-1])
            mass *= (1.0 - theta) + theta * no_switch_in_run
            for copies in itertools.product(range(n_copies), repeat=len(times)):
                yield SwitchSequence(switch_points, copies, mass)


def switch_posteriors(log_likelihoods: Tensor, theta: float, *, first_time: int = 0) -> Tensor:
    """``P(copy used for observation t+1 | observations 1..t)`` for ``t = 0..T``, ``[T+1, N]``.

    ``log_likelihoods[t-1, j]`` is what copy j gave observation t (``[T, N]``). Row ``t``
    is what :attr:`Switch.posterior` holds after ``t`` updates: a sum over every switch
    sequence of the run's first ``t`` observations (:func:`switch_sequences`), each
    weighted by its prior times the likelihood of those observations, in plain float64
    probabilities. A non-finite log-likelihood (a diverged copy) counts as probability
    zero; at each observation at least one copy must give a positive probability.

    Exponential in ``T``: for runs of a few observations.
    """
    probabilities = [
        [math.exp(value) if math.isfinite(value) else 0.0 for value in row]
        for row in log_likelihoods.double().tolist()
    ]
    n_copies = log_likelihoods.shape[1]
    rows = []
    for n_seen in range(len(probabilities) + 1):
        joint = [0.0] * n_copies  # P(observations 1..n_seen, copy for the next = j)
        for sequence in switch_sequences(n_seen, n_copies, theta, first_time=first_time):
            likelihood = math.prod(
                probabilities[t - 1][sequence.copy_at(t)] for t in range(1, n_seen + 1)
            )
            joint[sequence.copies[-1]] += sequence.prior * likelihood
        total = math.fsum(joint)
        rows.append([j / total for j in joint])
    return torch.tensor(rows, dtype=torch.float64)


# -- the loss: two linear maps per copy, plain autograd --------------------------------


@dataclass(frozen=True, slots=True)
class TwoPathLoss:
    """Alrao's two losses of one minibatch, each carrying its own gradient.

    ``mixture_loss`` (``-mean_b log sum_j a_j p_j(y_b|x_b)``) reaches the features only,
    so it trains the pre-classifier; ``own_losses[j]`` (``-mean_b log p_j(y_b|x_b)``)
    reaches copy j only, so it trains the copy as if it were alone.
    """

    mixture_loss: Tensor  # scalar
    own_losses: Tensor  # [N]

    @property
    def backward_loss(self) -> Tensor:
        """What one backward pass differentiates: the mixture's loss plus every copy's own."""
        return self.mixture_loss + self.own_losses.sum()

    @property
    def copy_log_likelihoods(self) -> Tensor:
        """Each copy's mean log-likelihood, ``[N]``: what the switch is told."""
        return -self.own_losses.detach()


def log_likelihood(output: Tensor, target: Tensor, regression: bool) -> Tensor:
    """``log p(y_b | x_b)`` of one copy's output ``[B, K]``, ``[B]``.

    Classification: the log-softmax at the target class. Regression: a Gaussian with
    unit variance around the output, on every one of the K outputs.
    """
    if regression:
        normal = torch.distributions.Normal(output, torch.ones_like(output))
        return normal.log_prob(target.reshape(output.shape).to(output.dtype)).sum(dim=1)
    return -F.cross_entropy(output, target, reduction="none")


def two_path_loss(
    z: Tensor, weight: Tensor, bias: Tensor, target: Tensor, log_posterior: Tensor, regression: bool
) -> TwoPathLoss:
    """Alrao's loss with two linear maps per copy and plain autograd.

    ``z`` ``[B, d]`` are the features, ``weight[j]`` ``[K, d]`` and ``bias[j]`` ``[K]``
    copy j's layer, ``log_posterior`` ``[N]`` the switch's ``log a_j``. The mixture path
    sees every copy through detached weights, so its gradient can only reach ``z``; each
    copy's own path sees ``z.detach()``, so its gradient can only reach that copy.
    """
    mixture_paths, own_paths = [], []
    for j in range(weight.shape[0]):
        mixture_out = F.linear(z, weight[j].detach(), bias[j].detach())
        own_out = F.linear(z.detach(), weight[j], bias[j])
        mixture_paths.append(log_likelihood(mixture_out, target, regression))
        own_paths.append(log_likelihood(own_out, target, regression))
    log_p = torch.stack(mixture_paths, dim=1)  # [B, N]
    log_mix = torch.logsumexp(log_posterior.to(log_p.dtype) + log_p, dim=1)  # [B]
    own_losses = -torch.stack(own_paths, dim=0).mean(dim=1)  # [N]
    return TwoPathLoss(-log_mix.mean(), own_losses)


def mixture_prediction(
    z: Tensor, weight: Tensor, bias: Tensor, log_posterior: Tensor, regression: bool
) -> Tensor:
    """What the model predicts, ``[B, K]``, from every copy's layer applied to ``z``.

    Classification: the mixture's log-probabilities ``log sum_j a_j softmax(C_j(z))_k``.
    Regression: the posterior-weighted mean ``sum_j a_j C_j(z)``.
    """
    outputs = [F.linear(z, weight[j], bias[j]) for j in range(weight.shape[0])]
    if regression:
        posterior = log_posterior.double().exp()
        return sum(a * output for a, output in zip(posterior, outputs))
    log_p = torch.stack([F.log_softmax(output, dim=1) for output in outputs], dim=1)  # [B, N, K]
    return torch.logsumexp(log_posterior.to(log_p.dtype).view(1, -1, 1) + log_p, dim=1)


# -- the rates: one feature at a time --------------------------------------------------


class _OneRateAtATime:
    """Draws ``lr ~ logU(lr_min, lr_max)``, one value per call, from a seeded generator.

    Each call takes one float64 uniform from the generator, so that N calls consume it
    exactly as one draw of N values does.
    """

    def __init__(self, lr_min: float, lr_max: float, seed: int) -> None:
        self.log_min, self.log_max = math.log(lr_min), math.log(lr_max)
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self) -> Tensor:
        u = torch.rand((), generator=self.generator, dtype=torch.float64).item()
        log_rate = self.log_min + u * (self.log_max - self.log_min)
        return torch.tensor(log_rate, dtype=torch.float64).exp().float()


_Draw = Callable[[], Tensor]
_Full = dict[str, Tensor]  # a module's own parameters' rates, one per scalar weight


def feature_rates(
    module: nn.Module,
    lr_min: float = 1e-5,
    lr_max: float = 10.0,
    *,
    seed: int = 0,
    per: Literal["feature", "weight"] = "feature",
) -> dict[str, Tensor]:
    """The rate of every scalar weight of every trainable parameter, by qualified name.

    Each tensor has its parameter's shape (float32). The draws follow one order, which
    is what makes a seed fix the rates: modules in ``named_modules()`` order (a shared
    module once); in each module, its features as listed in ARCHITECTURE.md (output
    units, output channels, norm elements, hidden units per layer and direction, then the
    projection's units, embedding dimensions, attention's q/k/v units), then one rate for
    each of its other parameters in registration order. With ``per="weight"``, every
    scalar of every parameter in row-major order. Frozen parameters use their draws too
    but get no rate; a parameter shared by two modules keeps its first module's rates.
    """
    draw = _OneRateAtATime(lr_min, lr_max, seed)
    rates: dict[str, Tensor] = {}
    owned: set[int] = set()
    for module_name, child in module.named_modules():
        own = dict(child.named_parameters(recurse=False))
        if not own:
            continue
        full = {name: torch.full(p.shape, math.nan) for name, p in own.items()}
        if per == "weight":
            for name in own:
                for index in itertools.product(*(range(size) for size in full[name].shape)):
                    full[name][index] = draw()
        else:
            _fill_per_feature(child, full, draw)
            for name in own:
                if full[name].isnan().all():
                    full[name].fill_(draw())
        for name, param in own.items():
            if id(param) not in owned and param.requires_grad:
                owned.add(id(param))
                rates[f"{module_name}.{name}" if module_name else name] = full[name]
    return rates


def _fill_per_feature(module: nn.Module, full: _Full, draw: _Draw) -> None:
    """Give each feature of ``module`` one draw, written where its weights are."""
    if isinstance(module, nn.Linear):
        _fill_units(full, "weight", "bias", draw)
    elif isinstance(module, nn.modules.conv._ConvTransposeNd):
        _fill_transposed_channels(module, full, draw)
    elif isinstance(module, nn.modules.conv._ConvNd):
        _fill_units(full, "weight", "bias", draw)
    elif isinstance(module, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.RMSNorm)):
        _fill_elements(full, draw)
    elif isinstance(module, nn.RNNBase):
        _fill_hidden_units(module, full, draw)
    elif isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
        for dim in range(full["weight"].shape[1]):
            full["weight"][:, dim] = draw()
    elif isinstance(module, nn.MultiheadAttention):
        _fill_attention_units(full, draw)


def _fill_units(full: _Full, weight: str, bias: str | None, draw: _Draw) -> None:
    """Row i of ``weight`` and entry i of ``bias`` compute unit (or channel) i."""
    for row in range(full[weight].shape[0]):
        rate = draw()
        full[weight][row] = rate
        if bias in full:
            full[bias][row] = rate


def _fill_transposed_channels(module: nn.Module, full: _Full, draw: _Draw) -> None:
    """Output channel c of a transposed convolution (weight ``[in, out/g, *k]``).

    It belongs to group ``c // (out/g)``; its incoming weights are that group's input
    rows at column ``c % (out/g)``.
    """
    weight = full["weight"]
    in_per_group = weight.shape[0] // module.groups
    out_per_group = weight.shape[1]
    for channel in range(module.out_channels):
        group, column = divmod(channel, out_per_group)
        rate = draw()
        weight[group * in_per_group : (group + 1) * in_per_group, column] = rate
        if "bias" in full:
            full["bias"][channel] = rate


def _fill_elements(full: _Full, draw: _Draw) -> None:
    """A norm's weight and bias at one element (a channel) act as one unit."""
    shape = full["weight" if "weight" in full else "bias"].shape
    for index in itertools.product(*(range(size) for size in shape)):
        rate = draw()
        for name in ("weight", "bias"):
            if name in full:
                full[name][index] = rate


def _fill_hidden_units(module: nn.RNNBase, full: _Full, draw: _Draw) -> None:
    """Hidden unit u of each layer and direction: row ``gate * H + u`` of every gate's block."""
    gates = {"LSTM": 4, "GRU": 3}.get(module.mode, 1)
    hidden = module.hidden_size
    for layer in range(module.num_layers):
        for direction in range(2 if module.bidirectional else 1):
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            for unit in range(hidden):
                rate = draw()
                for gate in range(gates):
                    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                        if name + suffix in full:
                            full[name + suffix][gate * hidden + unit] = rate
            if module.proj_size > 0:
                _fill_units(full, "weight_hr" + suffix, None, draw)


def _fill_attention_units(full: _Full, draw: _Draw) -> None:
    """The input projections' output units (q, then k, then v); ``out_proj`` is a Linear of its own."""
    if "in_proj_weight" in full:
        _fill_units(full, "in_proj_weight", "in_proj_bias", draw)
        return
    for i, name in enumerate(("q_proj_weight", "k_proj_weight", "v_proj_weight")):
        units = full[name].shape[0]
        for unit in range(units):
            rate = draw()
            full[name][unit] = rate
            if "in_proj_bias" in full:
                full["in_proj_bias"][i * units + unit] = rate


# -- the optimizers: one parameter at a time -------------------------------------------

ParamState = MutableMapping[str, Any]


@torch.no_grad()
def sgd_step(
    params: Sequence[Tensor],
    rates: Sequence[Tensor],
    states: Sequence[ParamState],
    *,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
) -> None:
    """One AlraoSGD step: ``p <- p - rate * d`` for each parameter that has a gradient.

    ``d = grad + weight_decay * p``; with momentum, ``buf <- momentum * buf + d`` (the
    first buffer is ``d`` itself) and ``d`` becomes ``buf``, or ``d + momentum * buf``
    with Nesterov. ``states[i]`` is parameter i's (``momentum_buffer``), kept by the caller.
    """
    for param, rate, state in zip(params, rates, states, strict=True):
        if param.grad is None:
            continue
        direction = param.grad + weight_decay * param
        if momentum:
            previous = state.get("momentum_buffer")
            buffer = direction.clone() if previous is None else momentum * previous + direction
            state["momentum_buffer"] = buffer
            direction = direction + momentum * buffer if nesterov else buffer
        param.copy_(param - rate * direction)


@torch.no_grad()
def adam_step(
    params: Sequence[Tensor],
    rates: Sequence[Tensor],
    states: Sequence[ParamState],
    *,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> None:
    """One AlraoAdam step: ``p <- p - rate * m_hat / (sqrt(v_hat) + eps)``.

    For each parameter that has a gradient, ``g = grad + weight_decay * p``, its own step
    count ``t`` goes up by one (a parameter first trained late starts at ``t = 1``),
    ``m <- b1 m + (1 - b1) g``, ``v <- b2 v + (1 - b2) g^2`` (both from zero),
    ``m_hat = m / (1 - b1^t)``, ``v_hat = v / (1 - b2^t)``. ``states[i]`` is parameter
    i's (``step``, ``exp_avg``, ``exp_avg_sq``), kept by the caller.
    """
    beta1, beta2 = betas
    for param, rate, state in zip(params, rates, states, strict=True):
        if param.grad is None:
            continue
        grad = param.grad + weight_decay * param
        step = state["step"] = state.get("step", 0) + 1
        exp_avg = state["exp_avg"] = beta1 * state.get("exp_avg", 0.0) + (1 - beta1) * grad
        exp_avg_sq = state["exp_avg_sq"] = beta2 * state.get("exp_avg_sq", 0.0) + (1 - beta2) * grad**2
        m_hat = exp_avg / (1 - beta1**step)
        v_hat = exp_avg_sq / (1 - beta2**step)
        param.copy_(param - rate * m_hat / (v_hat.sqrt() + eps))
