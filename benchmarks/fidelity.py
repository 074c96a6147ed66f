"""How faithful is an Alrao screen? Alrao against a tuned SGD grid on the zoo, MNIST-1D.

Runs ``alrao compare`` in-process (the zoo, the default decade grid 1e-5..10, Adam, two
seeds unless told otherwise), then prints the three headline figures next to their
targets:

- Kendall's tau between the Alrao ranking and the best-tuned-SGD ranking (>= 0.8), with
  Spearman's rho beside it;
- the median gap, Alrao's loss over the best SGD rate's, minus 1 (<= 10 %), and each
  architecture's gap;
- the cost ratio, seconds of the whole SGD grid over seconds of Alrao (>= 6).

It measures and prints; it asserts nothing and exits 0 whatever the figures are (2 on a
usage error such as an unknown architecture). The run directory keeps every result, so
``alrao report DIR`` redraws the full tables afterwards.

    python benchmarks/fidelity.py                                   # the real figures (long)
    python benchmarks/fidelity.py --subset 300 --epochs 1 --seeds 1 --archs mlp cnn1d   # smoke
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

from alrao_cli.config.schema import DEFAULT_EPOCHS, build_config
from alrao_cli.errors import AlraoUserError
from alrao_cli.study.plan import resolve_device
from alrao_cli.results.ranking import CompareSummary, compare_architectures, kendall_tau
from alrao_cli.results.records import RunResult
from alrao_cli.study.driver import run_study

TAU_TARGET = 0.8  # Kendall tau, at least
GAP_TARGET = 0.10  # median relative gap, at most
COST_TARGET = 6.0  # grid seconds / Alrao seconds, at least


class LineObserver:
    """One line on stderr per finished run, so that a long benchmark shows it is alive."""

    def __init__(self) -> None:
        self.total = 0
        self.done = 0

    def study_started(self, plan, done: int, resumed: bool) -> None:
        self.total, self.done = len(plan.runs), done
        print(f"{self.total} runs to do ({done} already done)", file=sys.stderr, flush=True)

    def run_started(self, spec, index: int, total: int) -> None:
        pass

    def run_progress(self, progress) -> None:
        pass

    def run_finished(self, result: RunResult) -> None:
        self.done += 1
        loss = result.best_val_loss
        shown = f"val {loss:.4f}" if loss is not None else (result.reason or "")
        print(
            f"[{self.done:>3}/{self.total}] {result.status:>8}  {result.key.replace('|', ' '):<40} "
            f"{shown}  ({result.seconds:.1f}s)",
            file=sys.stderr, flush=True,
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", nargs="+", default=None, help="architectures (default: the whole zoo)")
    parser.add_argument("--epochs", type=int, default=None, help=f"epochs per run (default: the tool's, {DEFAULT_EPOCHS})")
    parser.add_argument("--subset", type=int, default=None, help="training examples kept (default: all)")
    parser.add_argument("--seeds", type=int, default=2, help="seeds per run (default: 2)")
    parser.add_argument("--grid", default=None, help="SGD rates, as for --grid (default: the decades 1e-5..10)")
    parser.add_argument("--no-adam", action="store_true", help="leave Adam out (it does not enter the figures)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--plots", action="store_true", help="also write the PNG plots")
    parser.add_argument("--out", type=Path, default=None, help="run directory (default: runs/<timestamp>-compare)")
    return parser.parse_args(argv)


def overrides_of(args: argparse.Namespace) -> dict:
    """The options as `alrao compare` flags would give them: only what was set."""
    given = {
        "archs": args.archs, "epochs": args.epochs, "subset": args.subset, "seeds": args.seeds,
        "grid": args.grid, "device": args.device, "plots": args.plots,
        "out": None if args.out is None else str(args.out),
    }
    if args.no_adam:
        given["adam"] = False
    return {key: value for key, value in given.items() if value is not None}


def median_gap(summary: CompareSummary) -> float | None:
    gaps = [entry.gap for entry in summary.architectures if entry.gap is not None]
    return statistics.median(gaps) if gaps else None


def cost_ratio(summary: CompareSummary) -> float | None:
    if summary.alrao_seconds <= 0 or summary.grid_seconds <= 0:
        return None
    return summary.grid_seconds / summary.alrao_seconds


def per_seed_taus(summary: CompareSummary) -> dict[int, float | None]:
    """Kendall's tau of each seed alone: how much the headline tau owes to averaging."""
    by_seed: dict[int, list[tuple[float, float]]] = {}
    for entry in summary.architectures:
        for one in entry.per_seed:
            best = one.best_sgd
            if one.alrao is None or one.alrao.status != "ok" or one.alrao.val_loss is None or best is None:
                continue
            by_seed.setdefault(one.seed, []).append((one.alrao.val_loss, best.val_loss))
    return {
        seed: kendall_tau([alrao for alrao, _ in pairs], [sgd for _, sgd in pairs])
        for seed, pairs in sorted(by_seed.items())
    }


def seed_to_seed_taus(summary: CompareSummary) -> dict[str, float | None]:
    """Kendall's tau between the rankings of two seeds, for Alrao and for the tuned SGD.

    The noise floor of the headline figure: if tuned SGD does not rank the architectures
    the same way from one seed to the next, no screen can agree with it more than that.
    """
    losses: dict[str, dict[int, dict[str, float]]] = {"alrao": {}, "best_sgd": {}}
    for entry in summary.architectures:
        for one in entry.per_seed:
            if one.alrao is not None and one.alrao.status == "ok" and one.alrao.val_loss is not None:
                losses["alrao"].setdefault(one.seed, {})[entry.arch] = one.alrao.val_loss
            if one.best_sgd is not None:
                losses["best_sgd"].setdefault(one.seed, {})[entry.arch] = one.best_sgd.val_loss
    taus: dict[str, float | None] = {}
    for method, by_seed in losses.items():
        seeds = sorted(by_seed)
        if len(seeds) < 2:
            continue
        first, second = by_seed[seeds[0]], by_seed[seeds[1]]
        common = sorted(first.keys() & second.keys())
        taus[method] = kendall_tau([first[a] for a in common], [second[a] for a in common]) if len(common) > 1 else None
    return taus


def _num(value: float | None, spec: str) -> str:
    return "—" if value is None or not math.isfinite(value) else format(value, spec)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:+.1f} %"


def _verdict(value: float | None, target: float, at_least: bool) -> str:
    if value is None:
        return "n/a"
    return "yes" if (value >= target if at_least else value <= target) else "NO"


def print_figures(summary: CompareSummary, config, run_dir: Path, wall: float) -> dict:
    epochs = config.budget_epochs
    grid = ", ".join(f"{lr:g}" for lr in config.grid)
    print(f"Alrao fidelity on {config.data}: {len(summary.architectures)} architectures, "
          f"{config.seeds} seed(s), {epochs if epochs is not None else '?'} epoch(s), "
          f"subset {config.subset or 'all'}, device {resolve_device(config.device)}")
    print(f"SGD grid: {grid}")
    print()
    header = f"{'architecture':<18} {'Alrao loss':>11} {'best SGD loss':>14} {'best lr':>8} {'gap':>8} {'Adam loss':>10}  status"
    print(header)
    print("-" * len(header))
    for entry in summary.architectures:
        best = entry.best_sgd
        problems = [
            f"{stats.method}{'' if stats.lr is None or stats.method != 'sgd' else f' lr={stats.lr:g}'} {stats.status}"
            for stats in (entry.alrao, *entry.sgd, entry.adam)
            if stats is not None and stats.status != "ok"
        ]
        if entry.alrao is None:
            problems.insert(0, "alrao missing")
        print(
            f"{entry.arch:<18} {_num(entry.alrao.val_loss if entry.alrao else None, '.4f'):>11} "
            f"{_num(best.val_loss if best else None, '.4f'):>14} {_num(entry.best_sgd_lr, 'g'):>8} "
            f"{_pct(entry.gap):>8} "
            f"{_num(entry.adam.val_loss if entry.adam else None, '.4f'):>10}  "
            f"{'ok' if not problems else ', '.join(problems)}"
        )
    print()

    tau, rho = summary.kendall_tau, summary.spearman_rho
    gap, cost = median_gap(summary), cost_ratio(summary)
    rows = [
        ("Kendall tau (Alrao vs best-SGD ranking)", _num(tau, ".3f"), f">= {TAU_TARGET}", _verdict(tau, TAU_TARGET, True)),
        ("Spearman rho", _num(rho, ".3f"), "—", ""),
        ("median gap to best SGD", _pct(gap), f"<= {100 * GAP_TARGET:.0f} %", _verdict(gap, GAP_TARGET, False)),
        ("cost ratio (grid s / Alrao s)", _num(cost, ".1f") + ("x" if cost is not None else ""),
         f">= {COST_TARGET:g}x", _verdict(cost, COST_TARGET, True)),
    ]
    print(f"{'figure':<42} {'value':>9}  {'target':<9} met")
    print("-" * 66)
    for name, value, target, met in rows:
        print(f"{name:<42} {value:>9}  {target:<9} {met}")
    taus = per_seed_taus(summary)
    if len(taus) > 1:
        shown = ", ".join(f"seed {seed}: {_num(value, '.3f')}" for seed, value in taus.items())
        print(f"Kendall tau per seed: {shown}")
    reproducibility = seed_to_seed_taus(summary)
    if reproducibility:
        shown = ", ".join(f"{method} {_num(value, '.3f')}" for method, value in reproducibility.items())
        print(f"Kendall tau between the first two seeds' rankings (the noise floor): {shown}")
    print(f"seconds: Alrao {summary.alrao_seconds:.1f}, SGD grid {summary.grid_seconds:.1f}, "
          f"benchmark wall time {wall:.1f}")
    print(f"rankings compared over {len(summary.ranking)} architecture(s) with both a healthy Alrao and SGD run")
    print(f"full tables: alrao report {run_dir}")
    return {
        "kendall_tau": tau, "spearman_rho": rho, "median_gap": gap, "cost_ratio": cost,
        "gaps": {entry.arch: entry.gap for entry in summary.architectures},
        "per_seed_kendall_tau": {str(seed): value for seed, value in taus.items()},
        "seed_to_seed_kendall_tau": reproducibility,
        "seconds": {"alrao": summary.alrao_seconds, "grid": summary.grid_seconds, "wall": wall},
        "targets": {"kendall_tau": TAU_TARGET, "median_gap": GAP_TARGET, "cost_ratio": COST_TARGET},
        "epochs": epochs, "seeds": config.seeds, "subset": config.subset, "grid": list(config.grid),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        config = build_config(None, overrides_of(args))
        start = time.perf_counter()
        outcome = run_study(config, "compare", observer=LineObserver())
        wall = time.perf_counter() - start
    except AlraoUserError as error:
        print(f"error: {error.message}" + (f" ({error.hint})" if error.hint else ""), file=sys.stderr)
        return 2
    if outcome.interrupted:
        print(f"interrupted; resume with: alrao compare --resume {outcome.run_dir}", file=sys.stderr)
    summary = compare_architectures(outcome.study.runs)
    figures = print_figures(summary, config, outcome.run_dir, wall)
    (outcome.run_dir / "fidelity.json").write_text(json.dumps(figures, indent=2, allow_nan=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
