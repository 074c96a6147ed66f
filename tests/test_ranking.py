"""Ranking and comparison from hand-made results, checked against hand computations."""

from __future__ import annotations

from dataclasses import replace

import math
import statistics

import pytest

from alrao_cli.results.ranking import compare_architectures, gap, kendall_tau, rank_screen, spearman_rho
from alrao_cli.results.records import RunResult

from support import run_result

NAN = math.nan


def result(arch: str, losses: tuple[float, ...] = (), **fields) -> RunResult:
    """A run whose validation loss per epoch is ``losses``."""
    return run_result(arch, losses, **fields)


def test_screen_order_healthy_by_loss_then_accuracy_then_name_then_diverged_then_failed() -> None:
    runs = [
        result("a", (0.5,), acc=0.8),
        result("e", (0.9, NAN), status="diverged", reason="loss became nan"),
        result("f", status="failed", reason="ImportError: no module"),
        result("d", (0.5,), acc=0.9),
        result("b", (0.6, 0.3)),
        result("g", (0.1,), status="diverged", reason="loss became inf"),  # low loss, still after ok
        result("h", (0.5,), acc=None),
        result("c", (0.5,), acc=0.9),
        result("b", (0.01,), method="sgd", lr=0.1),  # not Alrao: not in the screen ranking
    ]
    ranked = rank_screen(runs)

    assert [entry.arch for entry in ranked] == ["b", "c", "d", "a", "h", "e", "g", "f"]
    assert [entry.rank for entry in ranked] == list(range(1, 9))
    assert [entry.status for entry in ranked][-3:] == ["diverged", "diverged", "failed"]
    assert ranked[0].val_loss == 0.3 and ranked[0].epoch == 2 and ranked[0].curve == (0.6, 0.3)
    assert ranked[-1].reason == "ImportError: no module" and ranked[-1].val_loss is None
    assert ranked[0].val_loss_std is None  # one seed


def test_screen_averages_seeds_and_takes_details_from_the_first() -> None:
    runs = [
        result("mlp", (0.7, 0.6), seed=2, acc=0.7, seconds=3.0),
        result("mlp", (0.2, 0.5), seed=0, acc=0.9, seconds=1.0, posterior=(0.2, 0.8), copy_lrs=(0.01, 0.1)),
        result("mlp", (0.4,), seed=1, acc=0.8, seconds=2.0),
    ]
    [entry] = rank_screen(runs)

    assert entry.val_loss == pytest.approx(statistics.fmean([0.2, 0.4, 0.6]))
    assert entry.val_loss_std == pytest.approx(0.2)  # sample standard deviation
    assert entry.val_acc == pytest.approx(0.8)
    assert entry.seconds == pytest.approx(6.0)
    assert (entry.epoch, entry.curve, entry.lr_selected) == (1, (0.2, 0.5), 0.1)  # seed 0


def test_one_unhealthy_seed_marks_the_architecture() -> None:
    runs = [
        result("mlp", (0.2,), seed=0),
        result("mlp", (0.3, NAN), seed=1, status="diverged", reason="loss became nan"),
        result("cnn", (0.9,), seed=0),
        result("cnn", seed=1, status="failed", reason="CUDA error"),
        result("cnn", (0.8,), seed=2, status="diverged", reason="loss became inf"),
    ]
    ranked = {entry.arch: entry for entry in rank_screen(runs)}

    assert ranked["mlp"].status == "diverged" and ranked["mlp"].reason == "seed 1: loss became nan"
    assert ranked["cnn"].status == "failed" and ranked["cnn"].reason == "seed 1: CUDA error"
    assert ranked["mlp"].val_loss == pytest.approx(0.25)  # the best each seed reached
    assert [ranked["mlp"].rank, ranked["cnn"].rank] == [1, 2]


def test_an_ok_run_without_a_finite_loss_counts_as_diverged() -> None:
    [entry] = rank_screen([result("mlp", (NAN,))])
    assert entry.status == "diverged" and entry.val_loss is None and entry.reason


def test_compare_picks_the_best_healthy_sgd_rate_and_the_gap() -> None:
    runs = [
        result("mlp", (0.5, 0.33), seconds=5.0),
        result("mlp", (0.5,), method="sgd", lr=0.01, seconds=2.0),
        result("mlp", (0.4, 0.3), method="sgd", lr=0.1, seconds=2.0),
        result("mlp", (0.05, NAN), method="sgd", lr=1.0, status="diverged", reason="nan", seconds=1.0),
        result("mlp", (0.35,), method="adam", lr=1e-3, seconds=2.0),
        result("lonely", (0.6,), seconds=4.0),
    ]
    summary = compare_architectures(runs)
    mlp, lonely = summary.architectures

    assert [stats.lr for stats in mlp.sgd] == [0.01, 0.1, 1.0]
    assert mlp.best_sgd_lr == 0.1  # the diverged rate's lower loss does not count
    assert mlp.best_sgd is not None and mlp.best_sgd.val_loss == 0.3
    assert mlp.gap == pytest.approx(0.33 / 0.3 - 1)
    assert mlp.sgd[2].status == "diverged"
    assert mlp.adam is not None and mlp.adam.val_loss == 0.35
    assert (lonely.best_sgd_lr, lonely.gap, lonely.adam, lonely.sgd) == (None, None, None, ())
    assert [pair.arch for pair in summary.ranking] == ["mlp"]  # only architectures with both
    assert (summary.kendall_tau, summary.spearman_rho) == (None, None)
    assert summary.alrao_seconds == 9.0 and summary.grid_seconds == 5.0


def test_compare_with_a_seed_diverging_at_one_rate() -> None:
    runs = [
        result("mlp", (0.4,), seed=0),
        result("mlp", (0.5,), seed=1),
        result("mlp", (0.2,), method="sgd", lr=1.0, seed=0),
        result("mlp", (NAN,), method="sgd", lr=1.0, seed=1, status="diverged", reason="nan"),
        result("mlp", (0.3,), method="sgd", lr=0.1, seed=0),
        result("mlp", (0.5,), method="sgd", lr=0.1, seed=1),
    ]
    [mlp] = compare_architectures(runs).architectures

    assert mlp.best_sgd_lr == 0.1 and mlp.sgd[1].status == "diverged"
    assert mlp.gap == pytest.approx(0.45 / 0.4 - 1)
    assert mlp.alrao is not None and mlp.alrao.val_loss_std == pytest.approx(statistics.stdev([0.4, 0.5]))
    assert [one.seed for one in mlp.per_seed] == [0, 1]
    assert [one.best_sgd_lr for one in mlp.per_seed] == [1.0, 0.1]  # each seed on its own
    assert mlp.per_seed[0].gap == pytest.approx(0.4 / 0.2 - 1)


def test_compare_without_a_healthy_alrao_has_no_gap() -> None:
    runs = [
        result("mlp", status="failed", reason="boom"),
        result("mlp", (0.3,), method="sgd", lr=0.1),
    ]
    [mlp] = compare_architectures(runs).architectures
    assert mlp.best_sgd_lr == 0.1 and mlp.gap is None


def test_compare_ranks_and_correlates_across_architectures() -> None:
    alrao = {"a": 0.1, "b": 0.2, "c": 0.3}
    sgd = {"a": 0.15, "b": 0.1, "c": 0.3}
    runs = [result(arch, (loss,)) for arch, loss in alrao.items()]
    runs += [result(arch, (loss,), method="sgd", lr=0.1) for arch, loss in sgd.items()]
    summary = compare_architectures(runs)

    assert [(p.arch, p.alrao_rank, p.sgd_rank) for p in summary.ranking] == [("a", 1, 2), ("b", 2, 1), ("c", 3, 3)]
    assert summary.kendall_tau == pytest.approx(1 / 3)  # 2 concordant, 1 discordant pair
    assert summary.spearman_rho == pytest.approx(1 - 6 * 2 / (3 * 8))


@pytest.mark.parametrize(
    ("xs", "ys", "tau", "rho"),
    [
        ([1, 2, 3, 4], [10, 20, 30, 40], 1.0, 1.0),
        ([1, 2, 3, 4], [4, 3, 2, 1], -1.0, -1.0),
        ([1, 2, 3], [2, 1, 3], 1 / 3, 0.5),
        # x ties once: 5 concordant pairs out of 6, tau-b = 5 / sqrt(5 * 6);
        # average ranks x = 1, 2.5, 2.5, 4 give rho = 4.5 / sqrt(4.5 * 5).
        ([1, 2, 2, 3], [1, 2, 3, 4], 5 / math.sqrt(30), 4.5 / math.sqrt(22.5)),
        # ties on both sides: tau-b = 3 / sqrt((6 - 1) * (6 - 3)); centred average ranks
        # x = -1, -1, 0.5, 1.5 and y = -0.5, -0.5, -0.5, 1.5 give rho = 3 / sqrt(4.5 * 3).
        ([1, 1, 2, 3], [1, 1, 1, 2], 3 / math.sqrt(15), 3 / math.sqrt(13.5)),
        ([1], [2], None, None),
        ([], [], None, None),
        ([2, 2, 2], [1, 2, 3], None, None),  # one side all tied: undefined
    ],
)
def test_rank_correlations_on_hand_computed_cases(xs, ys, tau, rho) -> None:
    assert kendall_tau(xs, ys) == (None if tau is None else pytest.approx(tau))
    assert spearman_rho(xs, ys) == (None if rho is None else pytest.approx(rho))


@pytest.mark.parametrize(
    ("xs", "ys"),
    [
        ([0.3, 0.1, 0.2, 0.2, 0.9, 0.5], [0.2, 0.2, 0.1, 0.4, 0.8, 0.8]),
        ([1, 2, 3, 4, 5, 6, 7], [3, 1, 2, 7, 5, 6, 4]),
        ([1, 1, 1, 2, 2], [5, 4, 4, 1, 2]),
    ],
)
def test_rank_correlations_agree_with_scipy(xs, ys) -> None:
    stats = pytest.importorskip("scipy.stats")
    assert kendall_tau(xs, ys) == pytest.approx(stats.kendalltau(xs, ys).statistic)
    assert spearman_rho(xs, ys) == pytest.approx(stats.spearmanr(xs, ys).statistic)


@pytest.mark.parametrize(("xs", "ys"), [([1, 2], [1]), ([1, NAN], [1, 2])])
def test_rank_correlations_refuse_bad_input(xs, ys) -> None:
    with pytest.raises(ValueError):
        kendall_tau(xs, ys)
    with pytest.raises(ValueError):
        spearman_rho(xs, ys)


@pytest.mark.parametrize(
    ("alrao", "best", "expected"),
    [
        (0.33, 0.3, 0.1),
        (0.3, 0.3, 0.0),
        (0.27, 0.3, -0.1),
        (None, 0.3, None),
        (0.3, None, None),
        (NAN, 0.3, None),
        (0.3, math.inf, None),
        (0.3, 0.0, None),
    ],
)
def test_gap(alrao, best, expected) -> None:
    got = gap(alrao, best)
    assert got == (None if expected is None else pytest.approx(expected))


def test_a_tie_between_sgd_rates_goes_to_the_smaller_rate() -> None:
    runs = [
        result("mlp", (0.4,)),
        result("mlp", (0.3,), method="sgd", lr=1.0),  # listed first, same loss
        result("mlp", (0.5, 0.3), method="sgd", lr=0.01),
        result("mlp", (0.31,), method="sgd", lr=1e-3),
    ]
    [mlp] = compare_architectures(runs).architectures
    assert mlp.best_sgd_lr == 0.01 and mlp.gap == pytest.approx(0.4 / 0.3 - 1)


def test_tied_losses_share_a_rank_as_tau_b_treats_them() -> None:
    alrao = {"a": 0.2, "b": 0.2, "c": 0.3, "d": 0.1}
    sgd = {"a": 0.1, "b": 0.3, "c": 0.2, "d": 0.2}
    runs = [result(arch, (loss,)) for arch, loss in alrao.items()]
    runs += [result(arch, (loss,), method="sgd", lr=0.1) for arch, loss in sgd.items()]
    summary = compare_architectures(runs)

    # Competition ranks (1 + how many are strictly lower), ordered by Alrao rank, then SGD rank.
    assert [(p.arch, p.alrao_rank, p.sgd_rank) for p in summary.ranking] == [
        ("d", 1, 2), ("a", 2, 1), ("b", 2, 4), ("c", 4, 2),
    ]
    # Pairs (a,b) tie in Alrao, (c,d) in SGD; of the other four, (a,c) and (b,d) are concordant,
    # (a,d) and (b,c) discordant, so tau-b = (2 - 2) / sqrt((6 - 1) * (6 - 1)) = 0.
    assert summary.kendall_tau == pytest.approx(0.0)


def test_a_method_not_registered_here_shows_as_its_results_describe_it() -> None:
    described = {"method_label": "Mystery", "tuned_over_grid": True}
    runs = [
        result("mlp", (0.4,)),
        replace(result("mlp", (0.5,), method="mystery", lr=0.1), **described),
        replace(result("mlp", (0.2,), method="mystery", lr=0.01), **described),
        result("mlp", (0.3,), method="lonely"),
    ]
    [mlp] = compare_architectures(runs).architectures
    assert [(b.method, b.label, b.tuned_over_grid) for b in mlp.baselines] == [
        ("mystery", "Mystery", True), ("lonely", "lonely", False),  # tuned over a grid first
    ]
    assert mlp.baseline("mystery").best.lr == 0.01 and mlp.baseline("lonely").shown.val_loss == 0.3
    assert mlp.best_sgd_lr is None and mlp.gap is None


def test_screen_entries_carry_their_baselines_and_gap() -> None:
    runs = [
        result("mlp", (0.4,)),
        result("mlp", (0.3,), method="sgd", lr=0.1),
        result("mlp", (0.2, NAN), method="adam", lr=1e-3, status="diverged", reason="nan"),
        result("cnn", (0.5,)),
    ]
    mlp, cnn = rank_screen(runs)
    assert [b.method for b in mlp.baselines] == ["sgd", "adam"] and mlp.gap == pytest.approx(0.4 / 0.3 - 1)
    assert mlp.baseline("adam").shown.status == "diverged"  # a single run shows, healthy or not
    assert mlp.baseline("adam").best is None
    assert (cnn.baselines, cnn.gap) == ((), None)


def test_a_portfolio_ranks_each_architecture_by_its_better_method_and_says_which() -> None:
    runs = [
        result("a", (0.6,)), result("a", (0.4,), method="adam", lr=1e-3),  # Adam wins on a
        result("b", (0.3,)), result("b", (0.5,), method="adam", lr=1e-3),  # Alrao wins on b
        result("c", (0.2,), method="sgd", lr=0.1),  # a baseline only: not ranked by the portfolio
    ]
    ranked = rank_screen(runs, methods=("alrao", "adam"))
    assert [(entry.arch, entry.method, entry.val_loss) for entry in ranked] == [("b", "alrao", 0.3), ("a", "adam", 0.4)]
    assert ranked[1].lr == 1e-3 and ranked[1].seconds == 2.0  # a portfolio pays for both runs
    assert ranked[0].baselines == ()  # the screened methods are not baselines of themselves


def test_a_failed_method_of_a_portfolio_does_not_hide_the_healthy_one() -> None:
    runs = [result("a", (), status="failed", reason="boom"), result("a", (0.7,), method="adam", lr=1e-3)]
    (entry,) = rank_screen(runs, methods=("alrao", "adam"))
    assert (entry.status, entry.method, entry.val_loss) == ("ok", "adam", 0.7)


def test_compare_measures_the_subject_it_is_given() -> None:
    runs = [
        result("a", (0.5,), method="adam", lr=1e-3), result("a", (0.4,), method="sgd", lr=0.1),
        result("b", (0.2,), method="adam", lr=1e-3), result("b", (0.3,), method="sgd", lr=0.1),
    ]
    summary = compare_architectures(runs, subject="adam")
    assert [entry.alrao.method for entry in summary.architectures] == ["adam", "adam"]
    assert summary.architectures[0].gap == pytest.approx(0.5 / 0.4 - 1)
    assert summary.kendall_tau == pytest.approx(1.0)
