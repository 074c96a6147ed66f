"""Which neighbouring rows of a screen's ranking differ beyond seed-to-seed noise.

Pure Python on saved numbers (no torch, no training, no SciPy).

The test
--------
A screen run with N >= 2 seeds trains every architecture once per seed, all on the same
data split. For two neighbouring rows, ``upper`` (ranked first) and ``lower``, take the
paired differences over the seeds, ``d_s = loss_lower(s) - loss_upper(s)`` (each the run's
best validation loss), their mean ``m`` and sample standard deviation ``sd``. The rule:

    ``upper`` and ``lower`` are separable when the two-sided Student t interval
    ``m +- t(1 - alpha/2, N - 1) * sd / sqrt(N)`` excludes 0, with alpha = 1 - level
    (0.05 by default); equivalently when the paired t-test's two-sided p-value is below alpha.

Why this test at N = 2-3. The pairs are independent across seeds (each seed is a fresh
initialisation and minibatch order for both architectures), so the ``d_s`` are N
independent draws. If they are Gaussian, the paired t interval is exact for every N >= 2:
its coverage is ``level`` whatever the unknown variance, with N - 1 degrees of freedom
(t = 12.71 at N = 2, 4.30 at N = 3, 3.18 at N = 4). Rank tests cannot do this: an exact
sign or sign-flip permutation test over N seeds has at most 2**N equally likely outcomes,
so its smallest two-sided p-value is 2 / 2**N (0.5 at N = 2, 0.25 at N = 3), and it could
never call a pair separable below N = 6 seeds. The price of the t interval is the
normality assumption, and its width: at N = 2 it separates two rows only when the two
seeds' differences agree closely, ``|d1 - d2| < 0.157 |m|`` (``t = |d1 + d2| / |d1 - d2|
> 12.71``); at N = 3 only when ``m`` exceeds 2.48 times ``sd``.

False alarms. When two architectures have the same expected loss and the differences are
Gaussian, a pair is called separable with probability alpha (5 %) exactly, at any N >= 2
(tests/test_separability.py measures it by simulation). Each neighbouring pair is tested
on its own, with no correction for multiplicity: with K rows there are K - 1 tests, so a
screen where every architecture is equally good shows at most about 0.05 * (K - 1) false
marks. That the rows are ordered by the same losses does not inflate the rate: for one
pair the ordering only fixes the sign of ``m`` and the rule is two-sided; among K rows,
neighbours in the order are the pairs with the closest means, which makes false marks
rarer still. Heavy-tailed noise (one seed that nearly diverges) makes the t test
conservative; skewed noise can make it liberal, most at N = 2. When every seed gives the
same difference (sd = 0), the interval is that single value: separable unless it is 0.

Rows that cannot be tested: a row whose run diverged or failed on some seed (the screen
ranks such rows last by rule, not by loss), or a pair with fewer than two seeds where
both finished. With N = 1 nothing is tested: the result says that the ranking's noise is
unmeasured and how to measure it (``--seeds 2``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from alrao_cli.results.ranking import ALRAO, rank_screen
from alrao_cli.results.records import RunResult

SEEDS_HINT = "--seeds 2"


@dataclass(frozen=True, slots=True)
class RankedSeeds:
    """One row of a screen's ranking, with its best validation loss per seed."""

    arch: str
    losses: Mapping[int, float | None]  # seed -> loss; None: the run diverged or failed


@dataclass(frozen=True, slots=True)
class Separation:
    """Two neighbouring rows: whether their difference is beyond seed-to-seed noise."""

    upper: str  # ranked first
    lower: str
    seeds: tuple[int, ...]  # the paired seeds (empty when the pair was not tested)
    mean_difference: float | None  # mean of lower - upper over the seeds: > 0 when upper is better
    low: float | None  # the t interval of the mean difference
    high: float | None
    p_value: float | None  # the paired t-test's, two-sided
    level: float
    separable: bool  # the interval excludes 0; False whenever the pair was not tested
    tested: bool
    reason: str | None = None  # why the pair was not tested

    def sentence(self) -> str:
        """The pair in words, as a screen's table states it."""
        if not self.tested:
            return f"{self.upper} and {self.lower}: not compared ({self.reason})"
        places = _decimal_places(self.high - self.low)
        percent = f"{100 * self.level:g} %"
        interval = f"{percent} interval {self.low:.{places}f} to {self.high:.{places}f} over {len(self.seeds)} seeds"
        if self.separable:
            return (f"{self.upper} ranks above {self.lower} beyond noise "
                    f"(loss {self.mean_difference:+.{places}f} for {self.lower}, {interval})")
        return f"{self.upper} and {self.lower}: not separable at this budget (difference {self.mean_difference:+.{places}f}, {interval})"


def _decimal_places(width: float) -> int:
    """Decimals that show an interval this wide to about three significant figures of its
    width, the same for its two ends and the difference, so that they read side by side."""
    if not math.isfinite(width) or width <= 0:
        return 3
    return min(6, max(0, 2 - math.floor(math.log10(width))))


@dataclass(frozen=True, slots=True)
class NoiseUnmeasured:
    """A one-seed screen: no pair of rows can be told apart from noise."""

    seeds: int
    hint: str = SEEDS_HINT

    def sentence(self) -> str:
        return (f"{self.seeds} seed{'' if self.seeds == 1 else 's'}: the ranking's noise is unmeasured; rerun with {self.hint} (or more) "
                "to see which neighbouring rows differ beyond noise")


@dataclass(frozen=True, slots=True)
class Separability:
    """Every pair of neighbouring rows of a screen with at least two seeds."""

    seeds: int
    level: float
    pairs: tuple[Separation, ...]  # (row 1, row 2), (row 2, row 3), ...

    def sentences(self) -> list[str]:
        return [pair.sentence() for pair in self.pairs]


def separability(rows: Sequence[RankedSeeds], level: float = 0.95) -> Separability | NoiseUnmeasured:
    """Test each pair of neighbouring ``rows`` (in ranking order) with the paired t interval."""
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    seeds = len({seed for row in rows for seed in row.losses})
    if seeds < 2:
        return NoiseUnmeasured(seeds=seeds)
    pairs = tuple(compare_pair(upper, lower, level) for upper, lower in itertools.pairwise(rows))
    return Separability(seeds=seeds, level=level, pairs=pairs)


def compare_pair(upper: RankedSeeds, lower: RankedSeeds, level: float = 0.95) -> Separation:
    """The paired t interval of ``lower - upper`` over their common seeds."""
    for row in (upper, lower):
        broken = sorted(seed for seed, loss in row.losses.items() if loss is None or not math.isfinite(loss))
        if broken:
            return _untested(upper, lower, level, f"{row.arch} diverged or failed on seed {broken[0]}")
    common = tuple(sorted(upper.losses.keys() & lower.losses.keys()))
    if len(common) < 2:
        return _untested(upper, lower, level, f"{len(common)} seed(s) with both")
    differences = [lower.losses[seed] - upper.losses[seed] for seed in common]
    mean, low, high, p_value = paired_t(differences, level)
    return Separation(
        upper=upper.arch, lower=lower.arch, seeds=common, mean_difference=mean, low=low, high=high,
        p_value=p_value, level=level, separable=low > 0 or high < 0, tested=True,
    )


def _untested(upper: RankedSeeds, lower: RankedSeeds, level: float, reason: str) -> Separation:
    return Separation(upper.arch, lower.arch, (), None, None, None, None, level, False, False, reason)


def paired_t(differences: Sequence[float], level: float = 0.95) -> tuple[float, float, float, float]:
    """Mean, interval (low, high) and two-sided p-value of the one-sample t-test of ``differences`` against 0."""
    n = len(differences)
    if n < 2:
        raise ValueError("the t interval needs at least two differences")
    mean = math.fsum(differences) / n
    sd = math.sqrt(math.fsum((d - mean) ** 2 for d in differences) / (n - 1))
    error = sd / math.sqrt(n)
    if error == 0:
        return mean, mean, mean, 1.0 if mean == 0 else 0.0
    half = t_quantile(1 - (1 - level) / 2, n - 1) * error
    return mean, mean - half, mean + half, t_two_sided_p(mean / error, n - 1)


# -- Student's t, without SciPy -------------------------------------------------------------
def t_two_sided_p(t: float, df: float) -> float:
    """``P(|T| >= |t|)`` for Student's t with ``df`` degrees of freedom: ``I_x(df/2, 1/2)``, ``x = df / (df + t^2)``."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    if math.isinf(t):
        return 0.0
    return _regularized_beta(df / 2, 0.5, df / (df + t * t))


def t_cdf(t: float, df: float) -> float:
    tail = t_two_sided_p(t, df) / 2
    return 1 - tail if t > 0 else tail


@lru_cache(maxsize=256)
def t_quantile(q: float, df: float) -> float:
    """The ``q`` quantile of Student's t (0 < q < 1), by bisection on :func:`t_cdf`."""
    if not 0 < q < 1:
        raise ValueError(f"q must be strictly between 0 and 1, got {q}")
    if q < 0.5:
        return -t_quantile(1 - q, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < q:
        low, high = high, 2 * high
    for _ in range(200):
        middle = (low + high) / 2
        if t_cdf(middle, df) < q:
            low = middle
        else:
            high = middle
        if high - low <= 1e-13 * high:
            break
    return (low + high) / 2


def _regularized_beta(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function ``I_x(a, b)`` (its continued fraction, by Lentz's method)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 500):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return fraction


# -- from a screen's results -----------------------------------------------------------------
def screen_rows(runs: Iterable[RunResult], methods: Sequence[str] = (ALRAO,)) -> list[RankedSeeds]:
    """A screen's rows in :func:`~alrao_cli.results.ranking.rank_screen` order, each with the
    per-seed losses of the method (and rate) that ranks it (a portfolio's best)."""
    runs = list(runs)
    rows = []
    for entry in rank_screen(runs, methods):
        chosen = [run for run in runs if run.arch == entry.arch and run.method == entry.method and run.lr == entry.lr]
        rows.append(RankedSeeds(entry.arch, {
            run.seed: run.best_val_loss if run.status == "ok" else None for run in chosen
        }))
    return rows


def screen_separability(runs: Iterable[RunResult], methods: Sequence[str] = (ALRAO,),
                        level: float = 0.95) -> Separability | NoiseUnmeasured:
    """:func:`separability` of a screen's saved results."""
    return separability(screen_rows(runs, methods), level)
