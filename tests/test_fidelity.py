"""The fidelity statistics on hand-made cases, each figure computed by hand in the comments."""

from __future__ import annotations

import math

import pytest

from alrao_cli.results.fidelity import (
    Interval,
    MissingMethod,
    SeedTable,
    agreement,
    best_in_top_k,
    bootstrap_interval,
    failure_ranks,
    fidelity,
    median_gap,
    merge_tables,
    noise_floor,
    percentile,
    portfolio,
    table_from_runs,
    tau_by_seed_count,
    top_pick_regret,
)
from alrao_cli.results.records import EpochRecord, RunResult

# The truth: SGD at two rates per architecture, three seeds.
# b's rate 1 diverged on seed 1, so it is out of the 3-seed mean (b = 2.0) but wins seeds 0 and 2
# alone; d's rate 0.01 (mean 3.9) beats its rate 0.1 (4.0).
TRUTH = SeedTable("sgd", {
    "a": {("sgd", 0.1): {0: 1.0, 1: 1.2, 2: 0.8}},
    "b": {("sgd", 0.1): {0: 2.1, 1: 1.9, 2: 2.0}, ("sgd", 1.0): {0: 1.5, 1: None, 2: 1.5}},
    "c": {("sgd", 0.1): {0: 3.0, 1: 1.0, 2: 5.0}},
    "d": {("sgd", 0.1): {0: 4.0, 1: 4.0, 2: 4.0}, ("sgd", 0.01): {0: 3.9, 1: 3.9, 2: 3.9}},
}, runs=18, seconds=36.0)

# The screen, two seeds. Seed 0: a 1, c 2, b 3, d diverged. Seed 1: a and b tie at 1, c and d diverged.
SCREEN = SeedTable.one_run("alrao", {
    "a": {0: 1.0, 1: 1.0},
    "b": {0: 3.0, 1: 1.0},
    "c": {0: 2.0, 1: None},
    "d": {0: None, 1: None},
}, seconds=2.0)


def test_the_truth_is_the_best_rate_by_mean_over_healthy_seeds() -> None:
    assert TRUTH.realise([0, 1, 2]) == pytest.approx({"a": 1.0, "b": 2.0, "c": 3.0, "d": 3.9})
    # One seed: b's rate 1 is healthy there and wins.
    assert TRUTH.realise([0]) == pytest.approx({"a": 1.0, "b": 1.5, "c": 3.0, "d": 3.9})
    assert TRUTH.realise([1]) == pytest.approx({"a": 1.2, "b": 1.9, "c": 1.0, "d": 3.9})
    # A repeated seed weighs twice: a = (1.0 + 1.0 + 1.2) / 3.
    assert TRUTH.realise([0, 0, 1])["a"] == pytest.approx(3.2 / 3)
    assert TRUTH.seeds == (0, 1, 2) and SCREEN.seeds == (0, 1)


def test_failures_rank_last_tied_with_each_other() -> None:
    assert failure_ranks([2.0, None, 1.0, None, math.nan]) == [2.0, 4.0, 1.0, 4.0, 4.0]


def test_tau_and_rho_with_a_diverged_architecture() -> None:
    # Screen a, c, b, d(diverged) against truth a, b, c, d: only (b, c) is discordant among 6 pairs.
    result = agreement(SCREEN.realise([0]), TRUTH.realise([0, 1, 2]))
    assert result.tau == pytest.approx((5 - 1) / 6)
    # Ranks 1, 3, 2, 4 against 1, 2, 3, 4: sum d^2 = 2, rho = 1 - 6 * 2 / (4 * 15).
    assert result.rho == pytest.approx(0.8)
    assert result.failed == 1


def test_tau_b_and_rho_with_ties_on_the_screen_side() -> None:
    # Screen ranks a, b tied at 1.5 and c, d (both diverged) tied at 3.5.
    # Pairs: (a, b) and (c, d) tied in x; the other 4 concordant. tau-b = 4 / sqrt((6 - 2) * (6 - 0)).
    result = agreement(SCREEN.realise([1]), TRUTH.realise([0, 1, 2]))
    assert result.tau == pytest.approx(4 / math.sqrt(24))
    # Centred ranks (-1, -1, 1, 1) and (-1.5, -0.5, 0.5, 1.5): 4 / sqrt(4 * 5).
    assert result.rho == pytest.approx(4 / math.sqrt(20))
    assert result.failed == 2


def test_a_screen_that_fails_everywhere_orders_nothing_and_a_tied_truth_is_undefined() -> None:
    truth = {"a": 1.0, "b": 2.0, "c": 3.0}
    assert agreement({"a": None, "b": None, "c": None}, truth).tau == 0.0
    assert agreement({}, truth).rho == 0.0  # not run at all: the same
    assert agreement({"a": 1.0, "b": 2.0, "c": 3.0}, {"a": 5.0, "b": 5.0, "c": 5.0}).tau is None
    assert agreement({"a": 1.0}, {"a": 1.0}).tau is None  # one architecture: nothing to order


def test_architectures_outside_the_truth_are_ignored() -> None:
    result = agreement({"a": 2.0, "b": 1.0, "extra": 0.0}, {"a": 1.0, "b": 2.0})
    assert result.tau == -1.0 and result.failed == 0


def test_noise_floor_is_the_mean_tau_over_the_truths_seed_pairs() -> None:
    # Seed 0 ranks a b c d; seed 1: c a b d; seed 2: a b d c.
    # (0, 1): (a, c) and (b, c) discordant: 2/6.  (0, 2): (c, d): 4/6.  (1, 2): 3 of 6 discordant: 0.
    floor = noise_floor(TRUTH)
    assert [(first, second) for first, second, _ in floor.pairs] == [(0, 1), (0, 2), (1, 2)]
    assert [tau for _, _, tau in floor.pairs] == pytest.approx([1 / 3, 2 / 3, 0.0])
    assert floor.tau == pytest.approx(1 / 3)
    assert noise_floor(SeedTable.one_run("sgd", {"a": {0: 1.0}, "b": {0: 2.0}})).tau is None  # one seed


def test_regret_of_the_top_pick() -> None:
    truth = TRUTH.realise([0, 1, 2])
    assert top_pick_regret(SCREEN.realise([0]), truth) == 0.0  # picks a, the truth's best
    # a and b tie first: the mean of their regrets 0 and 2.0 / 1.0 - 1.
    assert top_pick_regret(SCREEN.realise([1]), truth) == pytest.approx(0.5)
    assert top_pick_regret({"d": 1.0, "a": 2.0}, truth) == pytest.approx(2.9)  # d: 3.9 / 1.0 - 1
    assert top_pick_regret({"a": None, "b": None}, truth) is None  # no pick
    assert top_pick_regret({"a": 1.0, "b": 0.5}, {"a": 1.0, "b": None}) == math.inf  # b diverged at every rate
    assert top_pick_regret({"a": 1.0}, {"a": 0.0}) is None  # a ratio to 0 means nothing


def test_best_in_top_k() -> None:
    truth = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}
    assert best_in_top_k({"a": 3.0, "b": 1.0, "c": 2.0, "d": 0.5}, truth, k=3) is False  # a is 4th
    assert best_in_top_k({"a": 3.0, "b": 1.0, "c": 2.0, "d": 0.5}, truth, k=4) is True
    # a ties c for 3rd place: competition rank 3, in.
    assert best_in_top_k({"a": 2.0, "b": 1.0, "c": 2.0, "d": 0.5}, truth, k=3) is True
    # a failed: never in the top k, although only two healthy rows stand before the failures.
    assert best_in_top_k({"a": None, "b": 1.0, "c": 2.0, "d": None}, truth, k=3) is False
    # Two truth bests (a and b tie): either in the top 1 counts.
    assert best_in_top_k({"a": 3.0, "b": 1.0}, {"a": 1.0, "b": 1.0}, k=1) is True
    assert best_in_top_k({"a": 1.0}, {"a": None}) is None


def test_median_gap_over_healthy_architectures() -> None:
    truth = TRUTH.realise([0, 1, 2])
    # Seed 0: a 1/1 - 1 = 0, b 3/2 - 1 = 0.5, c 2/3 - 1 = -1/3 (d diverged): median 0.
    assert median_gap(SCREEN.realise([0]), truth) == pytest.approx(0.0)
    # Seed 1: a 0, b 1/2 - 1 = -0.5: median -0.25.
    assert median_gap(SCREEN.realise([1]), truth) == pytest.approx(-0.25)
    assert median_gap({"a": None}, truth) is None


def test_every_figure_of_one_screen_against_one_truth() -> None:
    result = fidelity(SCREEN, TRUTH, replicates=400)
    assert result.screen == "alrao" and result.truth == "sgd"
    assert result.seeds == (0, 1) and result.truth_seeds == (0, 1, 2)
    # One-seed figures: the mean over the screen's two seeds of the figures above.
    assert result.tau == pytest.approx(((4 / 6) + 4 / math.sqrt(24)) / 2)
    assert result.rho == pytest.approx((0.8 + 4 / math.sqrt(20)) / 2)
    assert result.regret == pytest.approx(0.25)
    assert result.best_in_top_k == 1.0 and result.top_k == 3
    assert result.median_gap == pytest.approx(-0.125)
    assert result.failed == 3  # d on seed 0; c and d on seed 1
    assert result.noise_floor.tau == pytest.approx(1 / 3)
    assert result.tau_over_floor == pytest.approx(result.tau * 3)
    # Two seeds together: a = 1, b = (3 + 1) / 2 = 2, c and d failed on a seed: tied last.
    # 5 concordant pairs, one tie in x: 5 / sqrt(5 * 6).
    assert result.tau_by_seeds == pytest.approx({1: result.tau, 2: 5 / math.sqrt(30)})
    # Costs per seed: 8 runs / 2 seeds against 18 / 3; 2 s / 2 against 36 s / 3.
    assert result.cost_runs == pytest.approx(4 / 6) and result.cost_seconds == pytest.approx(1 / 12)
    assert result.runs == 8 and result.seconds == 2.0
    assert result.tau_interval.low <= result.tau <= result.tau_interval.high
    assert result.rho_interval.low <= result.rho <= result.rho_interval.high
    assert result.tau_interval.high <= 1.0 and result.tau_interval.level == 0.95


def test_costs_against_another_grid() -> None:
    # The SGD grid alone, 42 runs and 6 s over its 3 seeds, prices a truth that also holds Adam's grid.
    grid = SeedTable("sgd", {"a": {("sgd", 0.1): {0: 1.0, 1: 1.0, 2: 1.0}}}, runs=42, seconds=6.0)
    result = fidelity(SCREEN, TRUTH, grid=grid, replicates=10)
    assert result.cost_runs == pytest.approx(4 / 14) and result.cost_seconds == pytest.approx(1 / 2)


def test_percentile_between_order_statistics() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([0.0, 1.0, 2.0, 3.0, 4.0], 0.025) == pytest.approx(0.1)  # position 0.1
    assert percentile([0.0, 1.0, 2.0, 3.0, 4.0], 1.0) == 4.0
    assert percentile([7.0], 0.3) == 7.0
    with pytest.raises(ValueError):
        percentile([], 0.5)


def test_bootstrap_interval_is_seeded_and_covers_the_resamples() -> None:
    truth = SeedTable.one_run("sgd", {"a": {0: 1.0}, "b": {0: 2.0}, "c": {0: 3.0}})
    # Seed 0 ranks as the truth (tau 1), seed 1 in reverse (tau -1). A resample of two seeds
    # gives a mean tau of -1, 0 or 1 with probabilities 1/4, 1/2, 1/4: the 95 % interval is [-1, 1].
    screen = SeedTable.one_run("m", {"a": {0: 1.0, 1: 3.0}, "b": {0: 2.0, 1: 2.0}, "c": {0: 3.0, 1: 1.0}})

    def tau(screen_seeds, truth_seeds):
        realised = truth.realise(truth_seeds)
        return sum(agreement(screen.realise([seed]), realised).tau for seed in screen_seeds) / len(screen_seeds)

    interval = bootstrap_interval(tau, screen.seeds, truth.seeds, replicates=2000, seed=3)
    assert interval == Interval(-1.0, 1.0, 0.95)
    assert bootstrap_interval(tau, screen.seeds, truth.seeds, replicates=200, seed=7) == \
        bootstrap_interval(tau, screen.seeds, truth.seeds, replicates=200, seed=7)
    # Only seed 0: every resample gives tau 1, the interval is that point.
    assert bootstrap_interval(tau, [0], truth.seeds, replicates=50) == Interval(1.0, 1.0, 0.95)
    assert bootstrap_interval(lambda s, t: None, [0], [0], replicates=5) is None


def test_what_more_seeds_buy() -> None:
    assert tau_by_seed_count(SCREEN, TRUTH, counts=(1, 2, 3)) == pytest.approx(
        {1: ((4 / 6) + 4 / math.sqrt(24)) / 2, 2: 5 / math.sqrt(30)}
    )  # no 3-seed figure: the screen has two seeds


def test_a_portfolio_ranks_each_architecture_by_its_better_method() -> None:
    adam = SeedTable.one_run("adam", {"a": {0: 2.0}, "b": {0: 0.5}, "c": {0: 2.5}, "d": {0: 5.0}}, seconds=3.0)
    alrao = SeedTable.one_run("alrao", {"a": {0: 1.0}, "b": {0: 3.0}, "c": {0: 2.0}, "d": {0: None}}, seconds=2.0)
    both = portfolio(["alrao", "adam"], {"alrao": alrao, "adam": adam})
    assert isinstance(both, SeedTable) and both.name == "alrao+adam"
    assert both.realise([0]) == {"a": 1.0, "b": 0.5, "c": 2.0, "d": 5.0}  # d: Adam's, Alrao diverged
    assert both.runs == 8 and both.seconds == 5.0
    assert portfolio(["alrao"], {"alrao": alrao}) is alrao


def test_a_missing_method_makes_the_whole_portfolio_missing() -> None:
    alrao = SeedTable.one_run("alrao", {"a": {0: 1.0}})
    missing = portfolio(["alrao", "prodigy", "dog"], {"alrao": alrao}, {"prodigy": "needs prodigyopt"})
    assert missing == MissingMethod("alrao+prodigy+dog", ("prodigy", "dog"), "needs prodigyopt")
    with pytest.raises(ValueError, match="two of the merged tables"):
        merge_tables("x", [alrao, alrao])


def run(arch: str, method: str, seed: int, losses: tuple[float, ...], *, lr: float | None = None,
        status: str = "ok", seconds: float = 1.0) -> RunResult:
    history = tuple(
        EpochRecord(epoch=i, step=i, train_loss=loss, train_acc=None, val_loss=loss, val_acc=None, seconds=float(i))
        for i, loss in enumerate(losses, start=1)
    )
    return RunResult(key=f"{arch}|{method}|{lr}|{seed}", arch=arch, method=method, lr=lr, seed=seed, status=status,
                     reason=None, params=10, seconds=seconds, history=history)


def test_table_from_saved_runs() -> None:
    runs = [
        run("a", "sgd", 0, (0.9, 0.7), lr=0.1),
        run("a", "sgd", 0, (0.5, math.nan), lr=1.0, status="diverged"),  # best 0.5 before diverging: out
        run("a", "sgd", 1, (0.8,), lr=0.1, seconds=math.inf),
        run("a", "sgd", 1, (0.6,), lr=1.0),
        run("b", "sgd", 0, (), lr=0.1, status="failed"),
        run("b", "alrao", 0, (0.4,)),  # another method: left out
    ]
    table = table_from_runs("sgd", runs, methods=["sgd"])
    assert table.losses == {
        "a": {("sgd", 0.1): {0: 0.7, 1: 0.8}, ("sgd", 1.0): {0: None, 1: 0.6}},
        "b": {("sgd", 0.1): {0: None}},
    }
    assert table.runs == 5 and table.seconds == 4.0  # the infinite time is not added
    assert table.realise([0, 1]) == pytest.approx({"a": 0.75, "b": None})  # rate 1 diverged on seed 0
