"""How faithfully a screen ranks architectures: its ranking against a tuned *truth*.

Pure Python on saved numbers (no torch, no training), so that a benchmark, a report or a
test can score any screen from its results alone.

The numbers
-----------
A :class:`SeedTable` holds, for one method (or a portfolio, or the grids that make a
truth) on one case, each architecture's *candidates* (a method at a rate) and each
candidate's best validation loss per seed; ``None`` stands for a run that diverged or
failed. *Realising* a table on seeds ``S`` (:meth:`SeedTable.realise`) gives one loss per
architecture:

- each candidate healthy on every seed of ``S`` scores the mean of its losses over ``S``;
  a candidate that diverged or failed on any of them is out (one bad seed in three is not
  a rate to recommend, as :func:`~alrao_cli.results.ranking.summarize_runs` says too);
- the architecture's loss is the lowest score among its candidates, ``None`` if none is
  left.

This is the rule of ``alrao screen`` (:func:`~alrao_cli.results.ranking.rank_screen`: a
portfolio ranks each architecture by its best method) and of ``alrao compare`` (the best
SGD rate is the one with the lowest mean loss). The *truth* is a table of tuning grids
(SGD's; or SGD's and Adam's merged) realised on all its seeds; a *one-seed screen* is the
screen's table realised on one seed, an *N-seed screen* on N of them.

Rank statistics
---------------
Both rankings are compared over the truth's architectures. An architecture whose screen
loss is ``None`` (it diverged, failed, or was not run) ranks last, tied with every other
such architecture: its loss counts as worse than any finite loss, and equal to the other
failures'. So a pair (failed, healthy) is concordant when the truth also prefers the
healthy one, and a pair of two failures is a tie, which counts in neither direction and
shrinks tau-b's denominator. The same holds on the truth's side (an architecture that
diverged at every rate ranks last there).

- Kendall's tau-b and Spearman's rho (average ranks for ties) are those of
  :mod:`alrao_cli.results.ranking`, computed on these ranks. A screen that ties every
  architecture (all failed) orders nothing and scores tau = rho = 0; against a truth
  that ties every architecture both are undefined (``None``).
- The *noise floor* is the mean over every pair of the truth's seeds of the tau between
  the two one-seed truths: how well one tuned grid predicts another run with a different
  seed. Pairs where tau is undefined are left out of the mean.
- The *regret of the top pick* is ``truth[pick] / truth[best] - 1`` (0.05 is 5 %), where
  ``pick`` is the screen's lowest-loss architecture and ``best`` the truth's. When several
  tie for the screen's first place, the regret is the mean over them (a uniform pick among
  them). Infinite when the pick diverged at every rate of the truth; ``None`` when the
  screen has no healthy architecture or the truth's best loss is not positive.
- *The truth's best is in the screen's top k* when an architecture with the truth's lowest
  loss has a screen rank of at most ``k``: ranks are competition ranks (1 + the number of
  architectures strictly better), so a tie across the k-th place counts as in; an
  architecture whose screen loss is ``None`` is never in the top k.
- The *median gap* is the median over architectures of ``screen / truth - 1``, over
  those with both losses finite and a positive truth.

Aggregation over seeds: a one-seed figure is the mean over the screen's seeds of the
figure of each one-seed screen; an N-seed tau (:func:`tau_by_seed_count`) is the mean over
every N-seed subset of the screen's seeds. The bootstrap (:func:`bootstrap_interval`)
resamples, with replacement and independently, the screen's seeds and the truth's seeds
(each to its own size) with a seeded :class:`random.Random`, recomputes the figure, and
takes the percentile interval (linear interpolation between order statistics). With three
seeds there are only ten distinct resamples of each side, so the interval is coarse, and
like every percentile bootstrap on few samples it tends to be too narrow: read it as a
lower bound on the uncertainty.
"""

from __future__ import annotations

import itertools
import math
import random
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from alrao_cli.results.ranking import average_ranks, kendall_tau, spearman_rho
from alrao_cli.results.records import RunResult

Loss = float | None  # a best validation loss; None: the run diverged or failed
Candidate = tuple[str, float | None]  # a method, at a rate (None for a method run without one)


@dataclass(frozen=True, slots=True)
class SeedTable:
    """One method, portfolio or truth on one case: each architecture's candidates and their
    best validation loss per seed, with what running them cost."""

    name: str  # "alrao", "alrao+adam", "sgd", ...
    losses: Mapping[str, Mapping[Candidate, Mapping[int, Loss]]]  # arch -> candidate -> seed -> loss
    runs: int = 0
    seconds: float = 0.0

    @classmethod
    def one_run(cls, name: str, losses: Mapping[str, Mapping[int, Loss]], *, seconds: float = 0.0) -> SeedTable:
        """A method run once per architecture and seed: ``{arch: {seed: loss}}``."""
        table = {arch: {(name, None): dict(by_seed)} for arch, by_seed in losses.items()}
        return cls(name, table, runs=sum(len(by_seed) for by_seed in losses.values()), seconds=seconds)

    @property
    def archs(self) -> tuple[str, ...]:
        return tuple(self.losses)

    @property
    def seeds(self) -> tuple[int, ...]:
        """Every seed any candidate ran with, in increasing order."""
        return tuple(sorted({seed for by_candidate in self.losses.values() for by_seed in by_candidate.values()
                             for seed in by_seed}))

    def realise(self, seeds: Sequence[int]) -> dict[str, Loss]:
        """Each architecture's loss on ``seeds`` (repeats weigh more): the lowest mean over
        the candidates healthy on all of them; None when none is."""
        if not seeds:
            raise ValueError("realise needs at least one seed")
        realised: dict[str, Loss] = {}
        for arch, by_candidate in self.losses.items():
            scores = []
            for by_seed in by_candidate.values():
                values = [by_seed.get(seed) for seed in seeds]
                if all(value is not None and math.isfinite(value) for value in values):
                    scores.append(math.fsum(values) / len(values))
            realised[arch] = min(scores) if scores else None
        return realised


@dataclass(frozen=True, slots=True)
class MissingMethod:
    """A screen that cannot be scored because some of its methods did not run at all."""

    name: str  # the screen: a method or a portfolio, "alrao+prodigy"
    missing: tuple[str, ...]  # its methods that have no table
    reason: str | None = None  # why, when known ("needs the package prodigyopt")


def table_from_runs(name: str, runs: Iterable[RunResult], methods: Sequence[str] | None = None) -> SeedTable:
    """The table of ``runs`` (those of ``methods`` only, if given): a run that diverged or
    failed, or never reached a finite validation loss, counts as None. Its cost counts the
    training runs each result took (``reversible-hd``'s meta rounds too), not the results."""
    losses: dict[str, dict[Candidate, dict[int, Loss]]] = {}
    count, seconds = 0, []
    for run in runs:
        if methods is not None and run.method not in methods:
            continue
        loss = run.best_val_loss if run.status == "ok" else None
        losses.setdefault(run.arch, {}).setdefault((run.method, run.lr), {})[run.seed] = loss
        count += run.training_runs
        if math.isfinite(run.seconds):
            seconds.append(run.seconds)
    return SeedTable(name, losses, runs=count, seconds=math.fsum(seconds))


def merge_tables(name: str, tables: Sequence[SeedTable]) -> SeedTable:
    """One table holding every candidate of ``tables``: a portfolio, or a truth over several
    grids. Architectures keep the order they first appear in; costs add up."""
    losses: dict[str, dict[Candidate, Mapping[int, Loss]]] = {}
    for table in tables:
        for arch, by_candidate in table.losses.items():
            merged = losses.setdefault(arch, {})
            for candidate, by_seed in by_candidate.items():
                if candidate in merged:
                    raise ValueError(f"{candidate[0]} at rate {candidate[1]} is in two of the merged tables")
                merged[candidate] = by_seed
    return SeedTable(name, losses, runs=sum(t.runs for t in tables), seconds=math.fsum(t.seconds for t in tables))


def portfolio(methods: Sequence[str], tables: Mapping[str, SeedTable],
              reasons: Mapping[str, str] | None = None) -> SeedTable | MissingMethod:
    """The screen of ``methods`` together (one method alone is its own table), or which of
    them did not run. A portfolio is never scored on the part of it that ran: that would
    put its name on another screen's figures."""
    name = "+".join(methods)
    missing = tuple(method for method in methods if method not in tables)
    if missing:
        why = "; ".join(reasons[m] for m in missing if reasons and m in reasons) or None
        return MissingMethod(name, missing, why)
    if len(methods) == 1:
        return tables[methods[0]]
    return merge_tables(name, [tables[method] for method in methods])


# -- rank statistics on one realisation ---------------------------------------------------
@dataclass(frozen=True, slots=True)
class Agreement:
    tau: float | None  # Kendall's tau-b
    rho: float | None  # Spearman's rho
    failed: int  # the truth's architectures the screen has no loss for (ranked last, tied)


def failure_ranks(values: Sequence[Loss]) -> list[float]:
    """Average ranks (1 = lowest loss); None (and NaN) rank last, tied with each other."""
    return average_ranks([value if value is not None and not math.isnan(value) else math.inf for value in values])


def agreement(screen: Mapping[str, Loss], truth: Mapping[str, Loss]) -> Agreement:
    """Kendall's tau-b and Spearman's rho between the two rankings of the truth's architectures."""
    archs = list(truth)
    screen_values = [screen.get(arch) for arch in archs]
    failed = sum(value is None for value in screen_values)
    screen_ranks, truth_ranks = failure_ranks(screen_values), failure_ranks([truth[arch] for arch in archs])
    if len(archs) < 2 or len(set(truth_ranks)) == 1:
        return Agreement(None, None, failed)
    if len(set(screen_ranks)) == 1:
        return Agreement(0.0, 0.0, failed)  # a screen that ties everything orders nothing
    return Agreement(kendall_tau(screen_ranks, truth_ranks), spearman_rho(screen_ranks, truth_ranks), failed)


def _truth_best(truth: Mapping[str, Loss]) -> tuple[float, list[str]] | None:
    finite = {arch: loss for arch, loss in truth.items() if loss is not None and math.isfinite(loss)}
    if not finite:
        return None
    best = min(finite.values())
    return best, [arch for arch, loss in finite.items() if loss == best]


def top_pick_regret(screen: Mapping[str, Loss], truth: Mapping[str, Loss]) -> float | None:
    """How much worse, relatively, the screen's first choice is than the truth's (0.05 = 5 %)."""
    found = _truth_best(truth)
    healthy = {arch: screen[arch] for arch in truth if screen.get(arch) is not None}
    if found is None or found[0] <= 0 or not healthy:
        return None
    best = found[0]
    top = min(healthy.values())
    picks = [arch for arch, loss in healthy.items() if loss == top]
    regrets = [truth[arch] / best - 1.0 if truth[arch] is not None else math.inf for arch in picks]
    return math.fsum(regrets) / len(regrets)


def best_in_top_k(screen: Mapping[str, Loss], truth: Mapping[str, Loss], k: int = 3) -> bool | None:
    """Whether an architecture with the truth's lowest loss is among the screen's first ``k``."""
    found = _truth_best(truth)
    if found is None:
        return None
    healthy = [screen[arch] for arch in truth if screen.get(arch) is not None]
    for arch in found[1]:
        loss = screen.get(arch)
        if loss is not None and 1 + sum(other < loss for other in healthy) <= k:
            return True
    return False


def median_gap(screen: Mapping[str, Loss], truth: Mapping[str, Loss]) -> float | None:
    """The median over architectures of ``screen / truth - 1``, where both are finite and truth > 0."""
    gaps = [
        screen[arch] / loss - 1.0
        for arch, loss in truth.items()
        if loss is not None and math.isfinite(loss) and loss > 0 and screen.get(arch) is not None
    ]
    return statistics.median(gaps) if gaps else None


# -- over seeds ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Interval:
    low: float
    high: float
    level: float  # 0.95: a 95 % percentile interval


@dataclass(frozen=True, slots=True)
class NoiseFloor:
    """Kendall's tau between the truth's own one-seed rankings."""

    tau: float | None  # the mean over the pairs whose tau is defined
    pairs: tuple[tuple[int, int, float | None], ...]  # (seed, seed, tau) for each pair of seeds


def noise_floor(truth: SeedTable) -> NoiseFloor:
    """How well one tuned grid ranks like the same grid run with another seed."""
    pairs = []
    for first, second in itertools.combinations(truth.seeds, 2):
        pairs.append((first, second, agreement(truth.realise([first]), truth.realise([second])).tau))
    defined = [tau for _, _, tau in pairs if tau is not None]
    return NoiseFloor(math.fsum(defined) / len(defined) if defined else None, tuple(pairs))


def percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of sorted values, linear between order statistics."""
    if not ordered:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 1:
        raise ValueError(f"q must be between 0 and 1, got {q}")
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


Statistic = Callable[[Sequence[int], Sequence[int]], float | None]
"""A figure computed from the screen's seeds and the truth's seeds (a resample of each)."""


def bootstrap_interval(statistic: Statistic, screen_seeds: Sequence[int], truth_seeds: Sequence[int], *,
                       replicates: int = 2000, level: float = 0.95, seed: int = 0) -> Interval | None:
    """Percentile interval of ``statistic`` over resamples (with replacement, each to its own
    size) of the screen's and the truth's seeds; None when no replicate gives a value."""
    if not screen_seeds or not truth_seeds:
        raise ValueError("the bootstrap needs seeds on both sides")
    rng = random.Random(seed)
    values = []
    for _ in range(replicates):
        screen_draw = [rng.choice(screen_seeds) for _ in screen_seeds]
        truth_draw = [rng.choice(truth_seeds) for _ in truth_seeds]
        value = statistic(screen_draw, truth_draw)
        if value is not None and math.isfinite(value):
            values.append(value)
    if not values:
        return None
    values.sort()
    tail = (1.0 - level) / 2
    return Interval(percentile(values, tail), percentile(values, 1.0 - tail), level)


def _mean_defined(values: Iterable[float | None]) -> float | None:
    defined = [value for value in values if value is not None]
    return math.fsum(defined) / len(defined) if defined else None


def tau_by_seed_count(screen: SeedTable, truth: SeedTable, counts: Iterable[int] = (1, 2, 3)) -> dict[int, float | None]:
    """The mean tau of an N-seed screen, over every N-seed subset of the screen's seeds, for
    each N in ``counts`` that the screen has seeds for."""
    realised_truth = truth.realise(truth.seeds)
    seeds = screen.seeds
    return {
        count: _mean_defined(
            agreement(screen.realise(subset), realised_truth).tau for subset in itertools.combinations(seeds, count)
        )
        for count in counts
        if 1 <= count <= len(seeds)
    }


@dataclass(frozen=True, slots=True)
class Fidelity:
    """How faithfully one screen ranks one case's architectures against one truth."""

    screen: str
    truth: str
    seeds: tuple[int, ...]  # the screen's; each is one one-seed screen
    truth_seeds: tuple[int, ...]
    tau: float | None  # one-seed screens: mean Kendall tau-b against the truth
    tau_interval: Interval | None
    rho: float | None
    rho_interval: Interval | None
    noise_floor: NoiseFloor
    regret: float | None  # mean over seeds of the top pick's regret; 0.05 = 5 %
    top_k: int
    best_in_top_k: float | None  # the fraction of seeds whose top k hold the truth's best
    median_gap: float | None  # mean over seeds of the median gap
    failed: int  # (architecture, seed) pairs the screen has no loss for
    tau_by_seeds: dict[int, float | None] = field(default_factory=dict)  # N -> tau of N-seed screens
    runs: int = 0  # the screen's runs, over all its seeds
    seconds: float = 0.0
    cost_runs: float | None = None  # runs per seed over the grid's runs per seed
    cost_seconds: float | None = None  # seconds per seed over the grid's seconds per seed

    @property
    def tau_over_floor(self) -> float | None:
        floor = self.noise_floor.tau
        return self.tau / floor if self.tau is not None and floor is not None and floor > 0 else None


def _per_seed_cost(table: SeedTable) -> tuple[float, float]:
    seeds = max(1, len(table.seeds))
    return table.runs / seeds, table.seconds / seeds


def fidelity(screen: SeedTable, truth: SeedTable, *, grid: SeedTable | None = None, top_k: int = 3,
             counts: Iterable[int] = (1, 2, 3), replicates: int = 2000, level: float = 0.95, seed: int = 0) -> Fidelity:
    """Every figure of ``screen`` against ``truth``; costs relative to ``grid`` (the truth's own by default)."""
    if not screen.seeds or not truth.seeds:
        raise ValueError("fidelity needs a screen and a truth with at least one seed each")

    one_seed = {each: screen.realise([each]) for each in screen.seeds}
    truths: dict[tuple[int, ...], dict[str, Loss]] = {}
    agreements: dict[tuple[int, tuple[int, ...]], Agreement] = {}

    def agreement_at(screen_seed: int, truth_seeds: Sequence[int]) -> Agreement:
        """One seed's screen against the truth on ``truth_seeds``; a resample repeats few
        multisets of seeds (ten of three seeds), so each is computed once."""
        drawn = tuple(sorted(truth_seeds))
        if drawn not in truths:
            truths[drawn] = truth.realise(drawn)
        if (screen_seed, drawn) not in agreements:
            agreements[screen_seed, drawn] = agreement(one_seed[screen_seed], truths[drawn])
        return agreements[screen_seed, drawn]

    def tau(screen_seeds: Sequence[int], truth_seeds: Sequence[int]) -> float | None:
        return _mean_defined(agreement_at(each, truth_seeds).tau for each in screen_seeds)

    def rho(screen_seeds: Sequence[int], truth_seeds: Sequence[int]) -> float | None:
        return _mean_defined(agreement_at(each, truth_seeds).rho for each in screen_seeds)

    realised_truth = truth.realise(truth.seeds)
    in_top = [best_in_top_k(realised, realised_truth, top_k) for realised in one_seed.values()]
    decided = [value for value in in_top if value is not None]
    grid_runs, grid_seconds = _per_seed_cost(grid or truth)
    runs, seconds = _per_seed_cost(screen)
    return Fidelity(
        screen=screen.name, truth=truth.name, seeds=screen.seeds, truth_seeds=truth.seeds,
        tau=tau(screen.seeds, truth.seeds),
        tau_interval=bootstrap_interval(tau, screen.seeds, truth.seeds, replicates=replicates, level=level, seed=seed),
        rho=rho(screen.seeds, truth.seeds),
        rho_interval=bootstrap_interval(rho, screen.seeds, truth.seeds, replicates=replicates, level=level, seed=seed),
        noise_floor=noise_floor(truth),
        regret=_mean_defined(top_pick_regret(realised, realised_truth) for realised in one_seed.values()),
        top_k=top_k,
        best_in_top_k=sum(decided) / len(decided) if decided else None,
        median_gap=_mean_defined(median_gap(realised, realised_truth) for realised in one_seed.values()),
        failed=sum(agreement(realised, realised_truth).failed for realised in one_seed.values()),
        tau_by_seeds=tau_by_seed_count(screen, truth, counts),
        runs=screen.runs, seconds=screen.seconds,
        cost_runs=runs / grid_runs if grid_runs > 0 else None,
        cost_seconds=seconds / grid_seconds if grid_seconds > 0 else None,
    )
