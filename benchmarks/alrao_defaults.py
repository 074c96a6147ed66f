"""Alrao's defaults, chosen by measurement: each one changed alone, scored on fidelity's cases.

For each *variant* (the defaults with one setting changed: the rate interval, the number
of output copies, the screen's epochs or batch size), an Alrao screen is trained on each
case of ``benchmarks/fidelity.py`` and scored against that case's cached truths exactly
as fidelity scores a method (same statistics, same truth, same seeds). Two more variants
cost no training, read off the default screen's runs: ranking by the *last* epoch's
validation loss instead of the best epoch's, and ranking by the *favoured copy*'s loss
(the output copy the switch weighs most, at the epoch with the best mixture loss) instead
of the mixture's.

Then, from the default screen's runs, whether the rate an Alrao run shows (the ``lr``
column: the favoured output copy's rate at the end) is a good single SGD rate for that
architecture: the truth's SGD loss at the grid point nearest that rate, over the grid's
best, beside two rates that need no Alrao run (0.1 for every architecture, and the one
grid rate best over the whole case, known only in hindsight).

A default should change only where a variant helps on every case: the script prints, per
variant and case, tau over the noise floor against both truths, the top pick's regret,
whether the truth's best is in the top 3, and the cost against the SGD grid; then one row
per variant saying on how many cases it beat the default. It measures and prints; it
changes nothing and asserts nothing.

Run directories live under ``--cache``/``alrao-defaults/<case>-<variant>``, and an
interrupted study resumes where it stopped when the same command is run again; the
truths are fidelity's cache (trained first if missing, which takes hours).

    python benchmarks/alrao_defaults.py                              # every case and variant (hours)
    python benchmarks/alrao_defaults.py --cases digits --variants default,lr-1e-3
    python benchmarks/alrao_defaults.py --small                      # a smoke run, under a minute
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import math
import sys
import time
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fidelity as bench  # noqa: E402 - the benchmark beside this one: its cases, truth cache and tables

from alrao_cli.errors import AlraoUserError  # noqa: E402
from alrao_cli.results.fidelity import Fidelity, SeedTable, fidelity  # noqa: E402
from alrao_cli.results.records import EpochRecord, RunResult  # noqa: E402


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    what: str  # one line for the table
    settings: dict[str, Any]  # config overrides of the screen (epochs: a share of the case's)
    reading: str = "best"  # which validation figure ranks: best, last or favoured


def variants() -> dict[str, Variant]:
    """The defaults, then one setting changed at a time."""
    listed = [
        Variant("default", "lr 1e-5..10, 10 copies, the case's epochs and batch", {}),
        Variant("lr-1e-3", "lr_min 1e-3: no feature below the grid's useful rates", {"lr_min": 1e-3}),
        Variant("lr-1e-4..1", "lr 1e-4..1: the interval shifted down a decade at both ends", {"lr_min": 1e-4, "lr_max": 1.0}),
        Variant("copies-5", "5 output copies instead of 10", {"copies": 5}),
        Variant("half-epochs", "half the case's epochs (half the cost)", {"epochs": 0.5}),
        Variant("batch-64", "batch 64 instead of 32 (half the steps)", {"batch_size": 64}),
        Variant("last-epoch", "ranked by the last epoch's loss, not the best epoch's", {}, reading="last"),
        Variant("favoured-copy", "ranked by the favoured copy's loss, not the mixture's", {}, reading="favoured"),
    ]
    return {variant.name: variant for variant in listed}


def trained_by(variant: Variant) -> str:
    """The variant whose runs ``variant`` reads (the reading variants read the default's)."""
    return "default" if variant.reading != "best" else variant.name


# -- readings -------------------------------------------------------------------------------
def read_last(run: RunResult) -> RunResult:
    """The run as if its last epoch were its best."""
    return replace(run, history=run.history[-1:])


def read_favoured(run: RunResult) -> RunResult:
    """The run as if the favoured copy's loss at its best mixture epoch were its only figure
    (unscored where that epoch kept no per-copy losses)."""
    best = run.best
    losses = best.copy_val_losses if best is not None else None
    if best is None or not losses or best.posterior is None:
        return replace(run, history=())
    favourite = max(range(len(best.posterior)), key=best.posterior.__getitem__)
    record: EpochRecord = replace(best, val_loss=losses[favourite])
    return replace(run, history=(record,))


READINGS = {"best": lambda run: run, "last": read_last, "favoured": read_favoured}


# -- running ------------------------------------------------------------------------------------
def screen(case: bench.Case, variant: Variant, args: argparse.Namespace) -> list[RunResult]:
    """The variant's Alrao screen on ``case``, resumed if an earlier run of the script left it."""
    settings = dict(variant.settings)
    if "epochs" in settings:
        settings["epochs"] = max(1, round(case.epochs * settings["epochs"]))
    run_dir = args.cache / "alrao-defaults" / f"{case.name}-{variant.name}"
    return bench.run_method(case, "alrao", args.seeds, args.grid, run_dir, args.device, settings)


def score(case: bench.Case, variant: Variant, runs: list[RunResult], sgd: SeedTable, truths: list[SeedTable],
          args: argparse.Namespace) -> list[Fidelity]:
    read = READINGS[variant.reading]
    table = bench.short_table(variant.name, [read(run) for run in runs], case)
    return [fidelity(table, truth, grid=sgd, top_k=args.top_k, counts=(1,), replicates=args.replicates)
            for truth in truths]


# -- the suggested rate ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Suggestion:
    """How good one way of picking a single SGD rate is for one architecture."""

    arch: str
    rates: tuple[float, ...]  # the rate picked, per Alrao seed (one for the rules without a run)
    regret: float | None  # mean over those picks of the truth's loss at the nearest grid point over its best; None: diverged


def sgd_losses(sgd: SeedTable, arch: str) -> dict[float, float | None]:
    """The truth's SGD loss at each grid rate, the mean over its seeds (None where a seed failed)."""
    found = {}
    for (method, rate), by_seed in sgd.losses[arch].items():
        values = list(by_seed.values())
        healthy = all(value is not None and not math.isnan(value) for value in values)
        found[rate] = sum(values) / len(values) if healthy and values else None
    return found


def nearest(rate: float, grid: list[float]) -> float:
    return min(grid, key=lambda point: abs(math.log10(point) - math.log10(rate)))


def regret_at(picks: list[float], losses: dict[float, float | None]) -> float | None:
    """Mean regret of the grid points nearest ``picks``; None if any of them diverged."""
    best = min(loss for loss in losses.values() if loss is not None)
    regrets = []
    for pick in picks:
        loss = losses[nearest(pick, sorted(losses))]
        if loss is None:
            return None
        regrets.append(loss / best - 1)
    return sum(regrets) / len(regrets)


def suggestions(runs: list[RunResult], sgd: SeedTable, case: bench.Case) -> dict[str, list[Suggestion]]:
    """Alrao's favoured-copy rate, 0.1, and the case's best single grid rate, per architecture."""
    short = case.short
    picked: dict[str, list[float]] = {}
    for run in runs:
        if run.status == "ok" and run.lr_selected is not None:
            picked.setdefault(short.get(run.arch, run.arch), []).append(run.lr_selected)
    archs = [arch for arch in sgd.losses if arch in picked]
    table = {arch: sgd_losses(sgd, arch) for arch in archs}
    rates = sorted({rate for losses in table.values() for rate in losses})

    def total_regret(rate: float) -> float:
        found = [regret_at([rate], table[arch]) for arch in archs]
        return sum(math.inf if value is None else value for value in found)

    hindsight = min(rates, key=total_regret) if rates else None
    rules = {"alrao's lr": lambda arch: picked[arch], "0.1": lambda arch: [0.1]}
    if hindsight is not None:
        rules[f"{hindsight:g} (best in hindsight)"] = lambda arch: [hindsight]
    return {name: [Suggestion(arch, tuple(rule(arch)), regret_at(rule(arch), table[arch])) for arch in archs]
            for name, rule in rules.items()}


def median(values: list[float]) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def suggestion_rows(case: str, found: dict[str, list[Suggestion]]) -> list[tuple[str, ...]]:
    rows = []
    for name, picks in found.items():
        regrets = [pick.regret for pick in picks]
        healthy = [value for value in regrets if value is not None]
        rows.append((case, name, bench.pct(median(healthy)), bench.pct(max(healthy, default=None)),
                     f"{sum(value is not None and value < 1e-9 for value in regrets)}/{len(regrets)}",
                     f"{sum(value is None for value in regrets)}/{len(regrets)}"))
    return rows


def suggestion_detail(found: dict[str, list[Suggestion]]) -> list[tuple[str, ...]]:
    """Per architecture: Alrao's picks and each rule's regret."""
    names = list(found)
    rows = []
    for index, pick in enumerate(found[names[0]]):
        rates = ", ".join(f"{rate:.3g}" for rate in pick.rates)
        rows.append((pick.arch, rates, *(bench.pct(found[name][index].regret) if found[name][index].regret is not None
                                          else "diverged" for name in names)))
    return rows


# -- printing -----------------------------------------------------------------------------------
COLUMNS = ("case", "variant", "truth", "tau", "tau 95%", "tau / floor", "regret", "best in top 3",
           "median gap", "failed", "seconds / grid")


def row(case: str, found: Fidelity) -> tuple[str, ...]:
    return (case, found.screen, found.truth, bench.num(found.tau), bench.interval(found.tau_interval),
            bench.num(found.tau_over_floor),
            bench.pct(found.regret), bench.fraction(found), bench.pct(found.median_gap), str(found.failed),
            bench.num(found.cost_seconds))


def verdicts(found: dict[tuple[str, str, str], Fidelity], cases: list[str], names: list[str]) -> list[tuple[str, ...]]:
    """Per variant, over every case and both truths: how often its tau is above, equal to
    or below the default's, the mean change in tau, and how often its regret is lower."""
    rows = []
    for name in names:
        if name == "default":
            continue
        above = same = below = lower_regret = pairs = 0
        changes = []
        for case in cases:
            for truth in ("sgd", "sgd+adam"):
                mine, base = found.get((case, name, truth)), found.get((case, "default", truth))
                if mine is None or base is None or mine.tau is None or base.tau is None:
                    continue
                pairs += 1
                change = mine.tau - base.tau
                changes.append(change)
                above += change > 1e-9
                below += change < -1e-9
                same += abs(change) <= 1e-9
                lower_regret += (mine.regret or 0.0) < (base.regret or 0.0) - 1e-9
        mean = bench.num(sum(changes) / len(changes), "+.2f") if changes else "—"
        rows.append((name, f"{above} / {same} / {below}", mean, f"{lower_regret}/{pairs}"))
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=None, help="zoo, close, digits, comma-separated (default: all; zoo with --small)")
    parser.add_argument("--variants", default=None, help=f"comma-separated (default: all): {', '.join(variants())}")
    parser.add_argument("--small", action="store_true", help="two architectures, one seed, two epochs, a tiny subset")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, ... (default: cpu)")
    parser.add_argument("--cache", type=Path, default=bench.ROOT / ".benchmarks",
                        help="fidelity's truth cache, and this study's run folders (default: .benchmarks)")
    args = parser.parse_args(argv)
    known = variants()
    chosen = [part.strip() for part in (args.variants or ",".join(known)).split(",") if part.strip()]
    for name in chosen:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            parser.error(f"unknown variant {name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    args.variants = [known[name] for name in dict.fromkeys(["default", *chosen])]  # the default is the baseline
    # The truth and screens as fidelity.py sets them, so that its cache is found.
    base = bench.parse_args(["--small"] if args.small else [])
    for name in ("seeds", "truth_seeds", "grid", "adam_grid", "replicates", "top_k", "refresh_truth", "epochs", "subset"):
        setattr(args, name, getattr(base, name))
    args.cases = args.cases or base.cases
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        cases = bench.chosen_cases(args)
    except AlraoUserError as error:
        print(f"error: {error.message}" + (f" ({error.hint})" if error.hint else ""), file=sys.stderr)
        return 2
    start = time.perf_counter()
    print(f"# Alrao's defaults, one setting at a time ({datetime.now():%Y-%m-%d}, torch {torch.__version__}, "
          f"{args.threads} thread(s), {args.seeds} seed(s) per screen)")
    for variant in args.variants:
        print(f"- {variant.name}: {variant.what}")
    found: dict[tuple[str, str, str], Fidelity] = {}
    rows: list[tuple[str, ...]] = []
    suggested: list[tuple[str, ...]] = []
    done_cases: list[str] = []
    for case in cases:
        if case.needs and importlib.util.find_spec(case.needs) is None:
            print(f"\n## {case.name}: skipped, it needs {case.needs}")
            continue
        try:
            sgd, both, where = bench.load_truth(case, args, args.device)
            print(f"\n## {case.name}: truth {where}", flush=True)
            trained: dict[str, list[RunResult]] = {}
            for variant in args.variants:
                source = trained_by(variant)
                if source not in trained:
                    trained[source] = screen(case, next(v for v in args.variants if v.name == source), args)
                for each in score(case, variant, trained[source], sgd, [sgd, both], args):
                    found[case.name, variant.name, each.truth] = each
                    rows.append(row(case.name, each))
            picks = suggestions(trained["default"], sgd, case)
            suggested += suggestion_rows(case.name, picks)
            names = list(picks)
            print(f"\n### {case.name}: the SGD loss at the grid point nearest each rule's rate, over the grid's best")
            print(bench.markdown_table(("architecture", "alrao's lr (per seed)", *names), suggestion_detail(picks)))
        except (bench.Interrupted, AlraoUserError) as stop:
            return bench.stopped(case, stop)
        done_cases.append(case.name)
    print(f"\n## Every variant on every case (one-seed screens against the {args.truth_seeds}-seed truths)")
    print(bench.markdown_table(COLUMNS, rows))
    print("\n## Each variant against the default, over every case and both truths")
    names = [variant.name for variant in args.variants]
    header = ("variant", "tau above / same / below", "mean tau change", "lower regret")
    print(bench.markdown_table(header, verdicts(found, done_cases, names)))
    print("\n## A single SGD rate per architecture: Alrao's lr against rates that need no Alrao run")
    header = ("case", "rule", "median regret", "worst regret", "the grid's best", "diverged")
    print(bench.markdown_table(header, suggested))
    print(f"\nwall time {time.perf_counter() - start:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
