"""Rankings and comparisons computed from run results alone (no training).

A screen ranks architectures by the validation loss Alrao reached on each; a compare
also asks how close that comes to the best-tuned single-rate SGD, and whether ranking
architectures by Alrao orders them as tuning SGD for each would (Kendall's tau and
Spearman's rho between the two rankings). Several seeds of one run are summarised by
their mean and standard deviation; one unhealthy seed marks the whole entry, because an
architecture that diverges one time in three is not one to recommend.

Every method but Alrao is a baseline, shown as its registered class declares
(:mod:`alrao_cli.study.methods`: its label, and whether it is tuned over a rate grid or run
once), so a newly registered baseline needs no change here. A method the registry does
not know (results written by another version) is shown by its name. SGD alone has a
fixed role: the reference that the gap and the rank agreement are measured against.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from alrao_cli.results.records import RunResult, Status

ALRAO = "alrao"
REFERENCE = "sgd"  # the baseline Alrao is measured against: SGD at its best rate, as in the paper
_SEVERITY: dict[str, int] = {"ok": 0, "diverged": 1, "timed out": 2, "failed": 3}


@dataclass(frozen=True, slots=True)
class MethodStats:
    """One method (at one rate) on one architecture, summarised over its seeds.

    The numbers come from the seeds that reached a finite validation loss, so a diverged
    entry still shows the best it did before diverging; ``status`` says whether to trust it.
    """

    method: str
    lr: float | None
    status: Status  # the worst over the seeds: failed, then timed out, then diverged, then ok
    val_loss: float | None  # mean over seeds of the best validation loss
    val_loss_std: float | None  # sample standard deviation; None for one seed
    val_acc: float | None
    val_acc_std: float | None
    epoch: int | None  # the best epoch of the first seed
    lr_selected: float | None  # Alrao: the rate the first seed's switch favoured at the end
    params: int | None
    seconds: float  # total over the seeds: what this entry cost
    reason: str | None  # why the worst seed failed or diverged
    seeds: tuple[int, ...]
    curve: tuple[float, ...]  # the first seed's validation loss per epoch


@dataclass(frozen=True, slots=True)
class BaselineStats:
    """One baseline method on one architecture: each rate it ran at, by increasing rate."""

    method: str
    label: str  # as the method's class declares it, e.g. "SGD"
    tuned_over_grid: bool  # run at every rate of a grid, to keep the best; else run once
    rates: tuple[MethodStats, ...]

    @property
    def best(self) -> MethodStats | None:
        """The healthy rate with the lowest mean validation loss; the smaller rate wins a tie."""
        healthy = [stats for stats in self.rates if stats.status == "ok" and stats.val_loss is not None]
        return min(healthy, key=lambda stats: stats.val_loss) if healthy else None

    @property
    def shown(self) -> MethodStats | None:
        """What a one-cell summary shows: a grid's best rate (None when none is healthy);
        the run of a method run once, whatever its status, so that its status shows."""
        if self.tuned_over_grid:
            return self.best
        return self.best or (self.rates[0] if self.rates else None)


def find_baseline(baselines: Iterable[BaselineStats], method: str) -> BaselineStats | None:
    """The entry of ``method`` among an architecture's baselines, if it ran."""
    return next((entry for entry in baselines if entry.method == method), None)


@dataclass(frozen=True, slots=True)
class RankedRun:
    """One line of a screen's ranking: an architecture as Alrao trained it, and its baselines."""

    rank: int  # 1-based; failed, timed-out and diverged entries come after every healthy one
    arch: str
    status: Status
    val_loss: float | None
    val_loss_std: float | None
    val_acc: float | None
    epoch: int | None
    lr_selected: float | None
    params: int | None
    seconds: float
    reason: str | None
    curve: tuple[float, ...]  # validation loss per epoch of the first seed, for a sparkline
    val_acc_std: float | None = None
    baselines: tuple[BaselineStats, ...] = ()  # those the screen ran (--baseline), in registration order
    gap: float | None = None  # screened / best SGD - 1, when the screen ran the SGD grid
    method: str = ALRAO  # the screened method this entry's numbers are from (the best of a portfolio)
    method_label: str = "Alrao"
    lr: float | None = None  # that method's rate, for single-rate methods
    tuned_over_grid: bool = False  # that method ran at every --grid rate: lr is its best one

    def baseline(self, method: str) -> BaselineStats | None:
        return find_baseline(self.baselines, method)


@dataclass(frozen=True, slots=True)
class ArchComparison:
    """Alrao against every baseline (the SGD grid, Adam, ...) on one architecture.

    The top-level comparison averages over seeds; ``per_seed`` holds one comparison per
    seed (with ``seed`` set and no ``per_seed`` of its own), so the spread stays visible.
    """

    arch: str
    alrao: MethodStats | None
    baselines: tuple[BaselineStats, ...]  # in registration order, then unknown methods
    gap: float | None  # alrao / best SGD - 1: 0.05 means Alrao's loss is 5% higher
    seed: int | None = None
    per_seed: tuple[ArchComparison, ...] = ()

    def baseline(self, method: str) -> BaselineStats | None:
        return find_baseline(self.baselines, method)

    @property
    def sgd(self) -> tuple[MethodStats, ...]:
        """The reference SGD grid, by increasing rate."""
        reference = self.baseline(REFERENCE)
        return reference.rates if reference is not None else ()

    @property
    def best_sgd(self) -> MethodStats | None:
        reference = self.baseline(REFERENCE)
        return reference.best if reference is not None else None

    @property
    def best_sgd_lr(self) -> float | None:
        """The healthy SGD rate with the lowest mean validation loss."""
        best = self.best_sgd
        return best.lr if best is not None else None

    @property
    def adam(self) -> MethodStats | None:
        """Adam's run, healthy or not: the ``adam`` entry of the documented JSON schema."""
        adam = self.baseline("adam")
        return adam.shown if adam is not None else None


@dataclass(frozen=True, slots=True)
class RankPair:
    """Where one architecture ranks by Alrao and by its best-tuned SGD (1 = lowest loss).

    Tied losses share a rank, the lowest of those they span (1, 1, 3), as Kendall's tau-b
    and Spearman's rho treat them.
    """

    arch: str
    alrao_rank: int
    sgd_rank: int
    alrao_val_loss: float
    sgd_val_loss: float


@dataclass(frozen=True, slots=True)
class CompareSummary:
    architectures: tuple[ArchComparison, ...]  # in order of first appearance
    ranking: tuple[RankPair, ...]  # architectures having both a healthy Alrao and SGD, by Alrao rank, then SGD rank
    kendall_tau: float | None  # between the two rankings; None with fewer than 2 architectures
    spearman_rho: float | None
    alrao_seconds: float  # spent on every Alrao run
    grid_seconds: float  # spent on every run of the SGD grids

    def comparison(self, arch: str) -> ArchComparison | None:
        return next((entry for entry in self.architectures if entry.arch == arch), None)


def summarize_runs(runs: Sequence[RunResult]) -> MethodStats:
    """Summarise the seeds of one method at one rate on one architecture."""
    if not runs:
        raise ValueError("summarize_runs needs at least one run")
    ordered = sorted(runs, key=lambda run: run.seed)
    first = ordered[0]
    worst = max(ordered, key=lambda run: _SEVERITY[run.status])
    status: Status = worst.status
    if status == "ok" and all(run.best_val_loss is None for run in ordered):
        status = "diverged"  # finished, yet never reached a finite validation loss
    reason = worst.reason
    if reason is not None and len(ordered) > 1:
        reason = f"seed {worst.seed}: {reason}"
    if status == "diverged" and reason is None:
        reason = "no finite validation loss"
    losses = [run.best_val_loss for run in ordered if run.best_val_loss is not None]
    accuracies = [run.best_val_acc for run in ordered if run.best_val_acc is not None]
    return MethodStats(
        method=first.method,
        lr=first.lr,
        status=status,
        val_loss=_mean(losses),
        val_loss_std=_std(losses),
        val_acc=_mean(accuracies),
        val_acc_std=_std(accuracies),
        epoch=first.best_epoch,
        lr_selected=first.lr_selected,
        params=next((run.params for run in ordered if run.params is not None), None),
        seconds=math.fsum(run.seconds for run in ordered if math.isfinite(run.seconds)),
        reason=reason,
        seeds=tuple(run.seed for run in ordered),
        curve=tuple(record.val_loss for record in first.history),
    )


def screened_methods(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The methods a study ranks by, from its saved config (Alrao in studies saved before ``--method``)."""
    return tuple(config.get("method") or (ALRAO,))


def rank_screen(runs: Iterable[RunResult], methods: Sequence[str] = (ALRAO,)) -> list[RankedRun]:
    """Architectures ranked by the screened method's validation loss; failed and diverged ones last.

    ``methods`` are the screened methods (``--method``): with several (a portfolio), each
    architecture is ranked by the best of them, and its entry says which one that was.
    Healthy entries go by loss, then higher accuracy, then name; diverged ones follow,
    then timed-out ones, then failed ones, each in the order the architectures first appeared. Every other
    method that ran (``--baseline``) is one of the entry's baselines.
    """
    by_arch = _group(runs)
    entries = [
        (arch, stats, arch_runs)
        for arch, arch_runs in by_arch.items()
        if (stats := _best_screened(arch_runs, methods)) is not None
    ]

    def sort_key(appearance: int) -> tuple:
        arch, (stats, _), _ = entries[appearance]
        severity = _SEVERITY[stats.status]
        if severity:
            return (severity, appearance)
        loss = stats.val_loss if stats.val_loss is not None else math.inf
        accuracy = (stats.val_acc is None, -(stats.val_acc or 0.0))
        return (0, loss, accuracy, arch, appearance)

    ranked = []
    for rank, appearance in enumerate(sorted(range(len(entries)), key=sort_key), start=1):
        arch, (stats, label), arch_runs = entries[appearance]
        baselines = _baselines([run for run in arch_runs if run.method not in methods])
        ranked.append(
            RankedRun(
                rank=rank, arch=arch, status=stats.status, val_loss=stats.val_loss,
                val_loss_std=stats.val_loss_std, val_acc=stats.val_acc, epoch=stats.epoch,
                lr_selected=stats.lr_selected, params=stats.params, seconds=stats.seconds,
                reason=stats.reason, curve=stats.curve, val_acc_std=stats.val_acc_std,
                baselines=baselines, gap=_reference_gap(stats, baselines),
                method=stats.method, method_label=label, lr=stats.lr,
                tuned_over_grid=any(run.tuned_over_grid for run in arch_runs if run.method == stats.method),
            )
        )
    return ranked


def _best_screened(runs: list[RunResult], methods: Sequence[str]) -> tuple[MethodStats, str] | None:
    """The best screened method on one architecture, with its label; None if none of them ran.

    Each method at each rate is summarised over its seeds; the healthiest, then lowest
    loss wins. Seconds count every screened run, since a portfolio pays for all of them.
    """
    candidates = []
    for method in methods:
        method_runs = [run for run in runs if run.method == method]
        for stats in _by_rate(method_runs) if method_runs else ():
            candidates.append((stats, method_runs[0].method_label or method))
    if not candidates:
        return None

    def quality(candidate: tuple[MethodStats, str]) -> tuple:
        stats = candidate[0]
        return (_SEVERITY[stats.status], stats.val_loss if stats.val_loss is not None else math.inf)

    best, label = min(candidates, key=quality)
    if len(candidates) > 1:
        best = replace(best, seconds=math.fsum(stats.seconds for stats, _ in candidates))
    return best, label


def compare_architectures(runs: Iterable[RunResult], subject: str = ALRAO) -> CompareSummary:
    """One method (``subject``, Alrao by default) against every other that ran (each SGD
    rate, Adam, ...), per architecture and across them.

    The summary's ``alrao*`` fields hold the subject's numbers, whichever method it is.
    """
    runs = list(runs)
    by_arch = _group(runs)
    architectures = tuple(_compare(arch, arch_runs, subject) for arch, arch_runs in by_arch.items())
    ranking = _rank_pairs(architectures)
    alrao_losses = [pair.alrao_val_loss for pair in ranking]
    sgd_losses = [pair.sgd_val_loss for pair in ranking]
    return CompareSummary(
        architectures=architectures,
        ranking=ranking,
        kendall_tau=kendall_tau(alrao_losses, sgd_losses),
        spearman_rho=spearman_rho(alrao_losses, sgd_losses),
        alrao_seconds=_total_seconds(run for run in runs if run.method == subject),
        grid_seconds=_total_seconds(run for run in runs if run.method == REFERENCE),
    )


def gap(alrao_loss: float | None, best_loss: float | None) -> float | None:
    """How much higher Alrao's loss is than the best, relatively: ``alrao / best - 1``.

    None when either is missing or non-finite, or the best loss is not positive (a ratio
    to zero or a negative loss means nothing).
    """
    if alrao_loss is None or best_loss is None:
        return None
    if not (math.isfinite(alrao_loss) and math.isfinite(best_loss)) or best_loss <= 0:
        return None
    return alrao_loss / best_loss - 1.0


def method_order(name: str, tuned_over_grid: bool) -> tuple[bool, bool, str]:
    """Where a method's rows, columns and curves go: Alrao, then methods tuned over a grid,
    then those run once, each group by name. Read from the results alone, so a report of
    any saved run orders them the same in any process."""
    return name != ALRAO, not tuned_over_grid, name


def kendall_tau(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Kendall's tau-b between two score sequences; ties count in neither direction.

    None when it is undefined: fewer than two items, or one sequence all tied.
    """
    _check_pairable(xs, ys)
    concordant = discordant = tied_x = tied_y = 0
    n = len(xs)
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = xs[i] - xs[j], ys[i] - ys[j]
            if dx == 0:
                tied_x += 1
            if dy == 0:
                tied_y += 1
            if dx * dy > 0:
                concordant += 1
            elif dx * dy < 0:
                discordant += 1
    pairs = n * (n - 1) // 2
    denominator = math.sqrt((pairs - tied_x) * (pairs - tied_y))
    return (concordant - discordant) / denominator if denominator > 0 else None


def spearman_rho(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Spearman's rho: the correlation of the ranks, tied items sharing their average rank.

    None when it is undefined: fewer than two items, or one sequence all tied.
    """
    _check_pairable(xs, ys)
    if len(xs) < 2:
        return None
    rank_x, rank_y = average_ranks(xs), average_ranks(ys)
    mean = (len(xs) + 1) / 2  # average ranks always average to this
    dx = [rank - mean for rank in rank_x]
    dy = [rank - mean for rank in rank_y]
    spread = math.sqrt(sum(d * d for d in dx) * sum(d * d for d in dy))
    return sum(a * b for a, b in zip(dx, dy)) / spread if spread > 0 else None


def _compare(arch: str, runs: list[RunResult], subject: str, seed: int | None = None) -> ArchComparison:
    subject_runs = [run for run in runs if run.method == subject]
    alrao = summarize_runs(subject_runs) if subject_runs else None
    baselines = _baselines([run for run in runs if run.method != subject])
    per_seed: tuple[ArchComparison, ...] = ()
    if seed is None:
        seeds = sorted({run.seed for run in runs})
        per_seed = tuple(
            _compare(arch, [run for run in runs if run.seed == each], subject, each) for each in seeds
        )
    return ArchComparison(
        arch=arch, alrao=alrao, baselines=baselines, gap=_reference_gap(alrao, baselines),
        seed=seed, per_seed=per_seed,
    )


def _baselines(runs: list[RunResult]) -> tuple[BaselineStats, ...]:
    """Each baseline method among ``runs``, in :func:`method_order`, described as its runs
    saved it (label, tuned over a grid or not)."""
    by_method: dict[str, list[RunResult]] = {}
    for run in runs:
        by_method.setdefault(run.method, []).append(run)
    entries = []
    for name in sorted(by_method, key=lambda name: method_order(name, by_method[name][0].tuned_over_grid)):
        first = by_method[name][0]
        entries.append(BaselineStats(name, first.method_label or name, first.tuned_over_grid, _by_rate(by_method[name])))
    return tuple(entries)


def _by_rate(runs: list[RunResult]) -> tuple[MethodStats, ...]:
    """One summary per rate, by increasing rate."""
    by_rate: dict[float | None, list[RunResult]] = {}
    for run in runs:
        by_rate.setdefault(run.lr, []).append(run)
    rates = sorted(by_rate, key=lambda lr: math.inf if lr is None else lr)
    return tuple(summarize_runs(by_rate[lr]) for lr in rates)


def _reference_gap(alrao: MethodStats | None, baselines: tuple[BaselineStats, ...]) -> float | None:
    """Alrao's gap to the best SGD rate, when Alrao finished ok and some rate did."""
    reference = find_baseline(baselines, REFERENCE)
    best = reference.best if reference is not None else None
    healthy_alrao = alrao.val_loss if alrao is not None and alrao.status == "ok" else None
    return gap(healthy_alrao, best.val_loss if best is not None else None)


def _rank_pairs(architectures: tuple[ArchComparison, ...]) -> tuple[RankPair, ...]:
    both = [
        (entry.arch, entry.alrao.val_loss, entry.best_sgd.val_loss)
        for entry in architectures
        if entry.alrao is not None and entry.alrao.status == "ok" and entry.alrao.val_loss is not None
        and entry.best_sgd is not None
    ]
    alrao_rank = _competition_ranks([alrao for _, alrao, _ in both])
    sgd_rank = _competition_ranks([sgd for _, _, sgd in both])
    pairs = [
        RankPair(arch, alrao_rank[i], sgd_rank[i], alrao, sgd)
        for i, (arch, alrao, sgd) in enumerate(both)
    ]
    return tuple(sorted(pairs, key=lambda pair: (pair.alrao_rank, pair.sgd_rank)))


def _competition_ranks(values: list[float]) -> list[int]:
    """1 for the lowest value; tied values share the lowest rank they span (1, 1, 3)."""
    return [1 + sum(other < value for other in values) for value in values]


def average_ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks where tied values share the mean of the ranks they span."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        shared = (start + end) / 2 + 1
        for position in range(start, end + 1):
            ranks[order[position]] = shared
        start = end + 1
    return ranks


def _check_pairable(xs: Sequence[float], ys: Sequence[float]) -> None:
    if len(xs) != len(ys):
        raise ValueError(f"rank correlation needs equal lengths, got {len(xs)} and {len(ys)}")
    if not all(math.isfinite(value) for value in (*xs, *ys)):
        raise ValueError("rank correlation needs finite scores")


def _group(runs: Iterable[RunResult]) -> dict[str, list[RunResult]]:
    """Runs by architecture, in the order the architectures first appear."""
    groups: dict[str, list[RunResult]] = {}
    for run in runs:
        groups.setdefault(run.arch, []).append(run)
    return groups


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _std(values: list[float]) -> float | None:
    return statistics.stdev(values) if len(values) > 1 else None


def _total_seconds(runs: Iterable[RunResult]) -> float:
    return math.fsum(run.seconds for run in runs if math.isfinite(run.seconds))
