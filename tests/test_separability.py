"""Separability of neighbouring rows: the paired t interval, computed by hand, and its false alarms."""

from __future__ import annotations

import math
import random

import pytest

from alrao_cli.results.records import EpochRecord, RunResult
from alrao_cli.results.separability import (
    NoiseUnmeasured,
    RankedSeeds,
    Separability,
    compare_pair,
    paired_t,
    screen_rows,
    screen_separability,
    separability,
    t_cdf,
    t_quantile,
    t_two_sided_p,
)

# Three seeds, in ranking order (means 1.0, 1.2, 1.3; d diverged on seed 1).
ROWS = [
    RankedSeeds("a", {0: 1.0, 1: 1.1, 2: 0.9}),
    RankedSeeds("b", {0: 1.25, 1: 1.3, 2: 1.05}),
    RankedSeeds("c", {0: 1.3, 1: 1.2, 2: 1.4}),
    RankedSeeds("d", {0: 1.5, 1: None, 2: 1.6}),
]


@pytest.mark.parametrize("df, quantile", [(1, 12.7062047362), (2, 4.30265272975), (3, 3.18244630528),
                                          (10, 2.22813885196), (30, 2.04227245630)])
def test_t_quantiles_match_the_tables(df, quantile) -> None:
    assert t_quantile(0.975, df) == pytest.approx(quantile, rel=1e-9)
    assert t_quantile(0.025, df) == pytest.approx(-quantile, rel=1e-9)


@pytest.mark.parametrize("t", [0.0, 0.3, 1.0, 4.0, 25.0])
def test_t_tails_match_the_closed_forms_for_one_and_two_degrees_of_freedom(t) -> None:
    assert t_two_sided_p(t, 1) == pytest.approx(1 - 2 / math.pi * math.atan(t), abs=1e-12)  # Cauchy
    assert t_two_sided_p(t, 2) == pytest.approx(1 - t / math.sqrt(2 + t * t), abs=1e-12)
    assert t_cdf(-t, 2) == pytest.approx(0.5 - t / (2 * math.sqrt(2 + t * t)), abs=1e-12)


def test_neighbours_three_seeds_by_hand() -> None:
    result = separability(ROWS)
    assert isinstance(result, Separability) and result.seeds == 3 and result.level == 0.95
    first, second, third = result.pairs

    # a, b: differences 0.25, 0.2, 0.15: mean 0.2, sd 0.05, se 0.05 / sqrt 3, t = 4 sqrt 3;
    # t(0.975, 2) = 4.30265: half-width 0.12421; p = 1 - t / sqrt(2 + t^2) for 2 degrees of freedom.
    assert (first.upper, first.lower, first.seeds) == ("a", "b", (0, 1, 2))
    assert first.mean_difference == pytest.approx(0.2)
    half = 4.30265272975 * 0.05 / math.sqrt(3)
    assert (first.low, first.high) == pytest.approx((0.2 - half, 0.2 + half))
    assert first.p_value == pytest.approx(1 - 4 * math.sqrt(3) / math.sqrt(50))
    assert first.separable and first.tested

    # b, c: differences 0.05, -0.1, 0.35: mean 0.1, sd sqrt(0.105 / 2), se = sd / sqrt 3, t = 0.755929.
    se = math.sqrt(0.105 / 2) / math.sqrt(3)
    assert second.mean_difference == pytest.approx(0.1)
    assert (second.low, second.high) == pytest.approx((0.1 - 4.30265272975 * se, 0.1 + 4.30265272975 * se))
    assert second.p_value == pytest.approx(1 - (0.1 / se) / math.sqrt(2 + (0.1 / se) ** 2))
    assert not second.separable and second.tested

    # c, d: d diverged on seed 1: ranked last by rule, not tested.
    assert not third.tested and not third.separable and third.reason == "d diverged or failed on seed 1"
    assert third.mean_difference is None and third.seeds == ()

    assert result.sentences() == [
        "a ranks above b beyond noise (loss +0.200 for b, 95 % interval 0.076 to 0.324 over 3 seeds)",
        "b and c: not separable at this budget (difference +0.10, 95 % interval -0.47 to 0.67 over 3 seeds)",
        "c and d: not compared (d diverged or failed on seed 1)",
    ]


def test_two_seeds_need_nearly_equal_differences() -> None:
    rows = [RankedSeeds("cnn1d", {0: 1.0, 1: 2.0}), RankedSeeds("vgg_small", {0: 1.5, 1: 2.6}),
            RankedSeeds("mlp", {0: 2.0, 1: 3.05})]
    first, second = separability(rows).pairs
    # cnn1d, vgg_small: differences 0.5, 0.6: t = 0.55 / 0.05 = 11 < 12.706.
    assert first.p_value == pytest.approx(1 - 2 / math.pi * math.atan(11))
    assert (first.low, first.high) == pytest.approx((0.55 - 12.7062047362 * 0.05, 0.55 + 12.7062047362 * 0.05))
    assert not first.separable
    assert first.sentence().startswith("cnn1d and vgg_small: not separable at this budget")
    # vgg_small, mlp: differences 0.5, 0.45: t = 0.475 / 0.025 = 19 > 12.706.
    assert second.p_value == pytest.approx(1 - 2 / math.pi * math.atan(19))
    assert second.separable


def test_equal_differences_on_every_seed() -> None:
    same = compare_pair(RankedSeeds("a", {0: 1.0, 1: 2.0}), RankedSeeds("b", {0: 1.5, 1: 2.5}))
    assert same.separable and (same.low, same.high, same.p_value) == (0.5, 0.5, 0.0)
    tie = compare_pair(RankedSeeds("a", {0: 1.0, 1: 2.0}), RankedSeeds("b", {0: 1.0, 1: 2.0}))
    assert not tie.separable and tie.p_value == 1.0


def test_pairs_with_fewer_than_two_common_seeds_are_not_tested() -> None:
    pair = compare_pair(RankedSeeds("a", {0: 1.0, 1: 2.0}), RankedSeeds("b", {1: 1.5, 2: 2.5}))
    assert not pair.tested and pair.reason == "1 seed(s) with both"


def test_one_seed_says_the_noise_is_unmeasured_and_how_to_measure_it() -> None:
    result = separability([RankedSeeds("a", {0: 1.0}), RankedSeeds("b", {0: 2.0})])
    assert result == NoiseUnmeasured(seeds=1)
    assert result.sentence() == (
        "1 seed: the ranking's noise is unmeasured; rerun with --seeds 2 (or more) "
        "to see which neighbouring rows differ beyond noise"
    )


@pytest.mark.parametrize("seeds", [2, 3])
def test_false_alarms_stay_at_five_percent_under_gaussian_noise(seeds) -> None:
    """Two equally good architectures, Gaussian seed noise (a shared per-seed part as well):
    ordered by their mean as a screen orders them, then tested. 4000 trials: the rate's
    standard error is 0.0034."""
    rng = random.Random(seeds)
    alarms = 0
    trials = 4000
    for _ in range(trials):
        shared = [rng.gauss(0, 1) for _ in range(seeds)]
        x = {s: 1.0 + shared[s] + rng.gauss(0, 0.3) for s in range(seeds)}
        y = {s: 1.0 + shared[s] + rng.gauss(0, 0.3) for s in range(seeds)}
        rows = sorted([RankedSeeds("x", x), RankedSeeds("y", y)], key=lambda row: sum(row.losses.values()))
        alarms += compare_pair(*rows).separable
    assert 0.035 <= alarms / trials <= 0.065


def test_paired_t_needs_two_differences() -> None:
    with pytest.raises(ValueError):
        paired_t([0.1])


def result(arch: str, method: str, seed: int, loss: float | None, lr: float | None = None) -> RunResult:
    history = () if loss is None else (
        EpochRecord(epoch=1, step=1, train_loss=loss, train_acc=None, val_loss=loss, val_acc=None, seconds=1.0),
    )
    return RunResult(key=f"{arch}|{method}|{seed}", arch=arch, method=method, lr=lr, seed=seed,
                     status="ok" if loss is not None else "failed", reason=None, params=1, seconds=1.0,
                     history=history)


def test_from_a_screens_saved_runs_with_a_portfolio() -> None:
    runs = [
        result("x", "alrao", 0, 1.0), result("x", "alrao", 1, 1.2),
        result("x", "adam", 0, 1.4, 1e-3), result("x", "adam", 1, 1.6, 1e-3),
        result("y", "alrao", 0, 2.0), result("y", "alrao", 1, 2.2),
        result("y", "adam", 0, 0.5, 1e-3), result("y", "adam", 1, 0.7, 1e-3),  # y: Adam is its better method
        result("z", "alrao", 0, None), result("z", "alrao", 1, None),
    ]
    rows = screen_rows(runs, ["alrao", "adam"])
    assert rows == [RankedSeeds("y", {0: 0.5, 1: 0.7}), RankedSeeds("x", {0: 1.0, 1: 1.2}),
                    RankedSeeds("z", {0: None, 1: None})]
    found = screen_separability(runs, ["alrao", "adam"])
    assert [pair.separable for pair in found.pairs] == [True, False]  # 0.5 and 0.5 apart on both seeds
    assert isinstance(screen_separability([run for run in runs if run.seed == 0]), NoiseUnmeasured)
