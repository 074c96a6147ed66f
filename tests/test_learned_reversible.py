"""Reversible SGD: bit-exact reversal, hypergradients against autograd through a stored
unrolled run and against finite differences, the information buffer, resuming, meta-optimisation."""

from __future__ import annotations

import io
import math

import pytest
import torch
import torch.nn.functional as F

from alrao_cli.learned.fixed_point import (
    RATIO_DENOMINATOR,
    divide_ratio,
    from_fixed,
    multiply_ratio,
    quantize_ratio,
    to_fixed,
)
from alrao_cli.learned.info_buffer import LIMB_BITS, InformationBuffer
from alrao_cli.learned.reversible import (
    ExactState,
    ReversibleProblem,
    Schedule,
    hypergradient,
    meta_optimize,
    reverse_hypergradient,
    train_reversibly,
    validation_loss,
)

D, H, C = 4, 6, 3
SIZES = [D * H, H, H * C, C]  # weights and biases of each layer: 4 rate groups


@pytest.fixture(autouse=True)
def one_thread():
    """Tensors here are tiny: intra-op threads only add overhead (a lot on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def mlp_loss(w: torch.Tensor, batch) -> torch.Tensor:
    x, y = batch
    w1, b1, w2, b2 = torch.split(w, SIZES)
    hidden = torch.tanh(x @ w1.view(D, H) + b1)
    return F.cross_entropy(hidden @ w2.view(H, C) + b2, y)


def make_problem(steps: int, dtype: torch.dtype = torch.float64) -> ReversibleProblem:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(120, D, generator=generator, dtype=dtype)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()

    def train_batch(t: int):
        rows = torch.randint(0, 80, (10,), generator=torch.Generator().manual_seed(1000 + t))
        return x[rows], y[rows]

    return ReversibleProblem(mlp_loss, train_batch, (x[80:], y[80:]), SIZES, steps)


def initial_weights(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Random weights already on the fixed-point grid, so 'restored' can mean 'equal'."""
    w = torch.randn(sum(SIZES), generator=torch.Generator().manual_seed(1), dtype=dtype) * 0.5
    return from_fixed(to_fixed(w, 52), 52, dtype)


def varied_schedule(blocks: int) -> Schedule:
    """Rates and decays that differ by block and layer; the decays are exact multiples of 2^-16."""
    alpha = torch.tensor(
        [[0.3, 0.5, 0.2, 0.4], [0.25, 0.1, 0.35, 0.3], [0.15, 0.2, 0.1, 0.05]], dtype=torch.float64
    )
    gamma = torch.tensor(
        [[0.875, 0.5, 0.9375, 0.75], [0.75, 0.875, 0.5, 0.9375], [0.5, 0.75, 0.875, 1.0]], dtype=torch.float64
    )
    return Schedule(alpha[:blocks], gamma[:blocks])


def unrolled_val_loss(problem: ReversibleProblem, w0: torch.Tensor, alpha: torch.Tensor, gamma: torch.Tensor):
    """Algorithm 1 in plain floats, every step kept in autograd's graph (memory ∝ T)."""
    blocks, layers = alpha.shape
    layer_of = torch.repeat_interleave(torch.arange(layers), torch.tensor(SIZES))
    w, v = w0, torch.zeros_like(w0)
    for t in range(problem.steps):
        b = t * blocks // problem.steps
        a, g_ = alpha[b][layer_of], gamma[b][layer_of]
        (grad,) = torch.autograd.grad(problem.loss(w, problem.train_batch(t)), w, create_graph=True)
        v = g_ * v - (1 - g_) * grad
        w = w + a * v
    return problem.loss(w, problem.val_batch)


@pytest.mark.parametrize(
    "dtype, schedule",
    [
        (torch.float64, Schedule.constant(1, 4, 0.3, 0.9)),
        (torch.float32, Schedule.constant(1, 4, 0.3, 0.9)),
        (torch.float64, varied_schedule(3)),
        (torch.float64, Schedule.constant(2, 4, 0.2, 0.5)),
    ],
    ids=["float64-gamma0.9", "float32-gamma0.9", "per-block-per-layer", "float64-gamma0.5"],
)
def test_reversing_100_steps_restores_the_initial_weights_bit_for_bit(dtype, schedule):
    problem = make_problem(100, dtype)
    w0 = initial_weights(dtype)
    state = train_reversibly(problem, w0, schedule)
    assert not torch.equal(from_fixed(state.weights, 52, dtype), w0)  # training moved them
    assert state.buffer.nbytes() > 0  # and destroyed bits that reversal needs
    result = reverse_hypergradient(problem, state, schedule, dtype)
    assert torch.equal(result.initial_weights, w0)
    assert torch.equal(state.weights, to_fixed(w0, 52))
    assert not state.velocity.any() and state.buffer.is_empty()


def test_plain_float_reversal_is_not_exact():
    """Why the fixed point and the buffer: the same 100 steps undone in floats drift."""
    problem, w0, gamma, alpha = make_problem(100), initial_weights(), 0.9, 0.3
    w, v, grads = w0.clone(), torch.zeros_like(w0), []
    for t in range(problem.steps):
        leaf = w.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(problem.loss(leaf, problem.train_batch(t)), leaf)
        v = gamma * v - (1 - gamma) * g
        w = w + alpha * v
        grads.append(g)
    for g in reversed(grads):
        w = w - alpha * v
        v = (v + (1 - gamma) * g) / gamma
    assert not torch.equal(w, w0)


@pytest.mark.parametrize(
    "gamma, steps", [(0.9, 50), (0.9, 100), (0.5, 100)], ids=["g0.9-T50", "g0.9-T100", "g0.5-T100"]
)
def test_only_the_buffer_grows_and_by_log2_one_over_gamma_bits_per_step(gamma, steps):
    problem, w0 = make_problem(steps), initial_weights()
    state = train_reversibly(problem, w0, Schedule.constant(1, 4, 0.3, gamma))
    assert state.weights.shape == state.velocity.shape == w0.shape  # w, v: fixed size
    n = int(quantize_ratio(torch.tensor(gamma)))
    bits = steps * math.log2(RATIO_DENOMINATOR / n)  # plus, once, up to 16 bits (the first digit pushed)
    limbs = state.buffer.nbytes() // (4 * w0.numel())
    assert math.floor(bits / LIMB_BITS) <= limbs <= math.ceil((bits + 17) / LIMB_BITS)


def test_hypergradient_matches_autograd_through_the_unrolled_run():
    problem, w0, schedule = make_problem(12), initial_weights(), varied_schedule(3)
    result = hypergradient(problem, w0, schedule)

    alpha = schedule.alpha.clone().requires_grad_(True)
    gamma = schedule.gamma.clone().requires_grad_(True)
    w_leaf = w0.clone().requires_grad_(True)
    loss = unrolled_val_loss(problem, w_leaf, alpha, gamma)
    d_alpha, d_gamma, d_w0 = torch.autograd.grad(loss, (alpha, gamma, w_leaf))

    assert result.val_loss == pytest.approx(float(loss.detach()), rel=1e-12)
    torch.testing.assert_close(result.d_alpha, d_alpha, rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(result.d_gamma, d_gamma, rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(result.d_w0, d_w0, rtol=1e-8, atol=1e-12)
    assert d_alpha.abs().min() > 1e-6 and d_gamma.abs().max() > 1e-4  # nothing compared is trivially 0


def test_hypergradient_matches_finite_differences():
    problem, w0, schedule = make_problem(12), initial_weights(), varied_schedule(3)
    result = hypergradient(problem, w0, schedule)
    eps = 1e-6
    for index in torch.cartesian_prod(torch.arange(3), torch.arange(4)).tolist():
        b, layer = index
        shifted = [schedule.alpha.clone() for _ in range(2)]
        shifted[0][b, layer] += eps
        shifted[1][b, layer] -= eps
        up, down = (validation_loss(problem, w0, Schedule(a, schedule.gamma)) for a in shifted)
        assert (up - down) / (2 * eps) == pytest.approx(float(result.d_alpha[b, layer]), rel=1e-5, abs=1e-9)
        # γ is quantised to n / 2^16 by the exact run, so its finite difference is taken on the float run
        gammas = [schedule.gamma.clone() for _ in range(2)]
        gammas[0][b, layer] += eps
        gammas[1][b, layer] -= eps
        up, down = (float(_float_val_loss(problem, w0, schedule.alpha, g)) for g in gammas)
        assert (up - down) / (2 * eps) == pytest.approx(float(result.d_gamma[b, layer]), rel=1e-5, abs=1e-9)


def _float_val_loss(problem, w0, alpha, gamma):
    return unrolled_val_loss(problem, w0.clone().requires_grad_(True), alpha, gamma).detach()


def test_finished_run_saved_and_reversed_elsewhere_gives_the_same_hypergradient():
    problem, w0, schedule = make_problem(60), initial_weights(), Schedule.constant(2, 4, 0.2, 0.5)
    state = train_reversibly(problem, w0, schedule)
    saved = io.BytesIO()
    torch.save(state.state_dict(), saved)
    assert len(state.buffer.state_dict()["limbs"]) >= 2  # several limbs travel
    direct = reverse_hypergradient(problem, state, schedule)
    saved.seek(0)
    loaded = ExactState.from_state_dict(torch.load(saved, weights_only=True))
    resumed = reverse_hypergradient(problem, loaded, schedule)
    for a, b in [
        (direct.d_alpha, resumed.d_alpha),
        (direct.d_gamma, resumed.d_gamma),
        (direct.initial_weights, resumed.initial_weights),
    ]:
        assert torch.equal(a, b)
    assert torch.equal(resumed.initial_weights, w0)


@pytest.mark.parametrize("max_base", [2, 7, 2**16], ids=["binary", "small-bases", "up-to-2^16"])
def test_information_buffer_is_an_integer_per_entry(max_base):
    generator = torch.Generator().manual_seed(max_base)
    size = 16
    buffer, reference = InformationBuffer(size), [0] * size
    for op in range(400):
        base = torch.randint(1, max_base + 1, (size,), generator=generator)
        if op % 3 == 2:  # pop one digit for every two pushes: the numbers grow and shrink
            digits = buffer.pop(base)
            expected = [r % int(b) for r, b in zip(reference, base)]
            reference = [r // int(b) for r, b in zip(reference, base)]
            assert digits.tolist() == expected
        else:
            digit = (torch.rand(size, generator=generator) * base).long()
            buffer.push(digit, base)
            reference = [r * int(b) + int(d) for r, b, d in zip(reference, base, digit)]
        limbs = buffer.state_dict()["limbs"]
        held = [sum(int(limbs[k, j]) << (LIMB_BITS * k) for k in range(len(limbs))) for j in range(size)]
        assert held == reference
    assert max(reference).bit_length() > LIMB_BITS or max_base == 2  # several limbs were exercised


def test_ratio_multiplication_is_exactly_invertible_and_close_to_the_product():
    generator = torch.Generator().manual_seed(5)
    value = torch.randint(-(2**60), 2**60, (1000,), generator=generator)
    value[:10] = torch.tensor([0, 1, -1, 2**16, -(2**16), 2**16 - 1, -(2**16) + 1, 7, -7, 3])
    numerator = torch.randint(1, RATIO_DENOMINATOR + 1, (1000,), generator=generator)
    buffer = InformationBuffer(1000)
    scaled = multiply_ratio(value, numerator, buffer)
    assert all(
        abs(s * RATIO_DENOMINATOR - v * n) < RATIO_DENOMINATOR
        for s, v, n in zip(scaled.tolist(), value.tolist(), numerator.tolist())
    )
    assert torch.equal(divide_ratio(scaled, numerator, buffer), value) and buffer.is_empty()


@pytest.mark.parametrize("tune_gamma", [True, False], ids=["alpha-and-gamma", "alpha-only"])
def test_meta_optimize_lowers_the_validation_loss(tune_gamma):
    problem, w0 = make_problem(20), initial_weights()
    start = Schedule.constant(2, 4, 0.1, 0.75)
    result = meta_optimize(problem, w0, start, meta_iters=3, meta_lr=0.2, tune_gamma=tune_gamma)
    assert len(result.history) == 3
    assert result.history[0].val_loss == pytest.approx(validation_loss(problem, w0, start), rel=1e-12)
    assert result.val_loss < result.history[0].val_loss
    assert (result.schedule.alpha > 0).all() and not torch.equal(result.schedule.alpha, start.alpha)
    assert ((result.schedule.gamma > 0) & (result.schedule.gamma <= 1)).all()
    assert torch.equal(result.schedule.gamma, start.gamma) != tune_gamma


def test_meta_optimize_with_no_rounds_returns_the_start():
    problem, w0, start = make_problem(8), initial_weights(), Schedule.constant(1, 4, 0.1, 0.75)
    result = meta_optimize(problem, w0, start, meta_iters=0, tune_gamma=False)
    assert result.history == [] and result.schedule is start
    assert result.val_loss == validation_loss(problem, w0, start)


def _random_batches(problem: ReversibleProblem) -> ReversibleProblem:
    def noisy(t):
        x, y = problem.train_batch(t)
        return x + 1e-3 * torch.randn_like(x), y

    return ReversibleProblem(problem.loss, noisy, problem.val_batch, SIZES, problem.steps)


@pytest.mark.parametrize(
    "change, error, message",
    [
        (lambda p, s: (p, Schedule(s.alpha, s.gamma * 0)), ValueError, "must lie in (0, 1]"),
        (lambda p, s: (p, Schedule(s.alpha, s.gamma + 0.5)), ValueError, "must lie in (0, 1]"),
        (lambda p, s: (p, Schedule(s.alpha[:, :3], s.gamma[:, :3])), ValueError, "layer_sizes"),
        (lambda p, s: (p, Schedule(s.alpha * 1e8, s.gamma)), OverflowError, "fixed-point range"),
        (lambda p, s: (_random_batches(p), s), RuntimeError, "reversal was not exact"),
    ],
    ids=["gamma-zero", "gamma-above-one", "wrong-layer-count", "diverging-run", "batches-not-reproducible"],
)
def test_bad_inputs_are_refused(change, error, message):
    problem, schedule = change(make_problem(10), Schedule.constant(1, 4, 0.3, 0.75))
    with pytest.raises(error, match=message.replace("(", r"\(").replace("]", r"\]")):
        hypergradient(problem, initial_weights(), schedule)
