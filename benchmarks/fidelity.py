"""How faithful is a one-run screen? Its ranking against tuned grids, on several cases.

Each *case* is a list of architectures on one dataset at one budget:

- ``zoo``: the built-in zoo on MNIST-1D (every zoo model that takes its [40] examples);
- ``close``: seven variants of one 1-D conv family on MNIST-1D (width, depth, residual
  or not; ``benchmarks/cases/close_call.py``), whose tuned losses lie close together, so
  that a screen's choice matters;
- ``digits``: scikit-learn's 8x8 digits (real images, offline; ``pip install scikit-learn``)
  through a ``python:`` data source, seven architectures from a linear classifier to a
  small residual CNN with BatchNorm (``benchmarks/cases/digits.py``).

The *truth* of a case is each architecture's best validation loss over a tuned grid,
averaged over ``--truth-seeds`` seeds (3), in two versions: SGD over the paper's decade
grid (``sgd``), and the better of the SGD and Adam grids (``sgd+adam``, what a
practitioner would tune). The rule is ``alrao compare``'s: the rate with the lowest mean
loss over the seeds, among those healthy on every seed. The truth is cached in
``.benchmarks/fidelity-truth-<case>-<budget>.json`` (with its run directories beside it),
so later runs only rerun the screens; ``--refresh-truth`` trains it again.

Each screen (``--methods``: any registered method, or a portfolio ``alrao+adam`` that ranks
each architecture by its better method) is trained with ``--seeds`` seeds (3). Per case it
prints, against each truth: Kendall's tau-b and Spearman's rho of a one-seed screen (the
mean over the screen's seeds) with a 95 % bootstrap interval over seeds; the truth's noise
floor (the tau between its own seeds); tau over the floor; the regret of the top pick;
whether the truth's best is in the screen's top 3 (the fraction of seeds); the median gap
to the tuned loss; and the cost in runs and in seconds, per seed, over the SGD grid's.
Then what N = 2, 3 seeds buy in tau, and one Markdown summary table across cases, for
docs/compare.md. The exact rules are in :mod:`alrao_cli.results.fidelity`.

What to keep in mind when reading the figures:

- screens and truth use the same data split and the same model seeds 0..N-1 (a seed fixes
  a run's initial weights and minibatch order; the split follows the study's base seed),
  so a screen's agreement may owe a little to the minibatch order it shares with the
  truth; a method tuned over the grid (``sgd``) screened here is its own truth;
- seconds are training seconds summed over runs, on ``--threads`` threads (1 by default,
  so that both sides of a ratio ran alike); a cached truth keeps the seconds of the day it
  was trained, which the case's header names;
- with 3 seeds the bootstrap has few distinct resamples: the interval is coarse and, if
  anything, too narrow.

It measures and prints; it asserts nothing and exits 0 whatever the figures are (2 on a
usage error, 130 when interrupted: run the same command again to resume the truth).

    python benchmarks/fidelity.py                                     # every case (hours)
    python benchmarks/fidelity.py --cases close --methods alrao,adam,alrao+adam
    python benchmarks/fidelity.py --methods all                       # every registered one-run method
    python benchmarks/fidelity.py --small                             # a smoke test, seconds
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import importlib.util
import json
import math
import sys
import time
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import torch

from alrao_cli.config.schema import DEFAULT_GRID, build_config
from alrao_cli.errors import AlraoUserError
from alrao_cli.results.fidelity import (
    Fidelity,
    MissingMethod,
    SeedTable,
    fidelity,
    merge_tables,
    portfolio,
    table_from_runs,
)
from alrao_cli.results.records import RunResult, write_json_atomic
from alrao_cli.study.driver import run_study
from alrao_cli.study.methods import METHODS, get_method, method_catalog, register_method
from alrao_cli.study.methods.adam import AdamMethod
from alrao_cli.study.plan import zoo_fitting

ROOT = Path(__file__).resolve().parent.parent
CASES_DIR = "benchmarks/cases"  # relative to ROOT, the studies' workdir: run keys stay short
ADAM_GRID: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1)
DEFAULT_METHODS = "alrao,adam,alrao+adam"
TRUTH_ADAM = "fidelity-adam-grid"  # Adam tuned over a grid: only this benchmark needs it
SUMMARY_COLUMNS = (
    "case", "screen", "truth", "tau", "tau 95%", "noise floor", "tau / floor", "rho",
    "regret", "best in top 3", "median gap", "runs / grid", "seconds / grid",
)


if TRUTH_ADAM not in METHODS:

    @register_method(TRUTH_ADAM)
    class GridAdam(AdamMethod):
        """Adam at every rate of the study's grid, the best kept: the practitioner's truth of benchmarks/fidelity.py."""

        label = "Adam (grid)"
        tuned_over_grid = True


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    title: str
    data: str
    archs: tuple[str, ...]  # as the studies name them, relative to ROOT
    epochs: int
    subset: int | None = None
    batch_size: int = 32
    needs: str | None = None  # a module the case imports (a benchmark-only dependency)

    @property
    def short(self) -> dict[str, str]:
        """Table names: ``conv_w16`` for ``benchmarks/cases/close_call.py:conv_w16``."""
        return {arch: arch.rpartition(":")[2] if ".py:" in arch else arch for arch in self.archs}


def _file_archs(file: str, names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{CASES_DIR}/{file}:{name}" for name in names)


def all_cases() -> dict[str, Case]:
    close = ("conv_w32", "conv_w48", "conv_w64", "conv_w32_deep", "conv_w32_res", "conv_w48_res", "conv_w48_res4")
    digits = ("linear", "mlp_narrow", "mlp_wide", "cnn", "cnn_bn", "cnn_bn_wide", "resnet_tiny")
    return {
        "zoo": Case("zoo", "the built-in zoo on MNIST-1D", "mnist1d", zoo_fitting((40,))[0], epochs=10),
        "close": Case("close", "one conv family's variants on MNIST-1D (a close call)", "mnist1d",
                      _file_archs("close_call.py", close), epochs=10),
        "digits": Case("digits", "scikit-learn's 8x8 digits", f"python:{CASES_DIR}/digits.py:digits_datasets",
                       _file_archs("digits.py", digits), epochs=20, needs="sklearn"),
    }


def small_case(case: Case) -> Case:
    """Two architectures, two epochs, a tiny subset."""
    two = ("mlp", "cnn1d") if case.name == "zoo" else case.archs[:2]
    return replace(case, archs=two, epochs=2, subset=128)


# -- running studies ----------------------------------------------------------------------
class LineObserver:
    """One line on stderr per finished run, so that a long benchmark shows it is alive."""

    def __init__(self, what: str) -> None:
        self.what, self.total, self.done = what, 0, 0

    def study_started(self, plan, done: int, resumed: bool) -> None:
        self.total, self.done = len(plan.runs), done
        print(f"{self.what}: {self.total} runs ({done} already done)", file=sys.stderr, flush=True)

    def run_started(self, spec, index: int, total: int) -> None:
        pass

    def run_progress(self, progress) -> None:
        pass

    def run_finished(self, result: RunResult) -> None:
        self.done += 1
        loss = result.best_val_loss
        shown = f"val {loss:.4f}" if loss is not None and result.status == "ok" else result.status
        print(f"  [{self.done:>3}/{self.total}] {result.key.rpartition('/')[2]:<48} {shown}  ({result.seconds:.1f}s)",
              file=sys.stderr, flush=True)


class Interrupted(Exception):
    def __init__(self, run_dir: Path) -> None:
        super().__init__(str(run_dir))
        self.run_dir = run_dir


def run_method(case: Case, method: str, seeds: int, grid: tuple[float, ...], run_dir: Path, device: str,
               settings: dict | None = None) -> list[RunResult]:
    """Every run of ``method`` on the case (every rate of ``grid`` if it is tuned over one),
    resuming ``run_dir`` where an earlier, interrupted benchmark left it. ``settings``:
    config keys that differ from the case's (benchmarks/alrao_defaults.py's variants)."""
    overrides = {
        "archs": list(case.archs), "data": case.data, "epochs": case.epochs, "batch_size": case.batch_size,
        "seeds": seeds, "seed": 0, "method": [method], "grid": list(grid), "plots": False, "device": device,
        "workdir": str(ROOT), "out": str(run_dir), **(settings or {}),
    }
    if case.subset is not None:
        overrides["subset"] = case.subset
    resume = run_dir if (run_dir / "config.yaml").is_file() else None  # the study's saved config: resumable
    outcome = run_study(build_config(None, overrides), "screen", resume=resume,
                        observer=LineObserver(f"{case.name} {method}"))
    if outcome.interrupted:
        raise Interrupted(run_dir)
    return list(outcome.study.runs)


def stopped(case: Case, stop: Interrupted | AlraoUserError) -> int:
    """Say on stderr why ``case`` stopped; the script's exit code: 130 interrupted (run the
    same command again to resume), 2 a usage error."""
    if isinstance(stop, Interrupted):
        print(f"interrupted in {stop.run_dir}; run the same command again to resume", file=sys.stderr)
        return 130
    print(f"error in case {case.name}: {stop.message}" + (f" ({stop.hint})" if stop.hint else ""), file=sys.stderr)
    return 2


def short_table(name: str, runs: list[RunResult], case: Case) -> SeedTable:
    short = case.short
    return table_from_runs(name, [replace(run, arch=short.get(run.arch, run.arch)) for run in runs])


def truth_key(case: Case, args: argparse.Namespace) -> str:
    """What the truth depends on: ``e10-3seeds-<hash of the rest>``."""
    described = json.dumps({
        "archs": case.archs, "data": case.data, "epochs": case.epochs, "subset": case.subset,
        "batch_size": case.batch_size, "seeds": args.truth_seeds, "sgd": args.grid, "adam": args.adam_grid,
    }, sort_keys=True)
    digest = hashlib.sha256(described.encode()).hexdigest()[:8]
    subset = "" if case.subset is None else f"-n{case.subset}"
    return f"e{case.epochs}{subset}-{args.truth_seeds}seeds-{digest}"


def table_to_json(table: SeedTable) -> dict:
    rows = [
        {"arch": arch, "method": method, "lr": lr, "seed": seed, "loss": loss}
        for arch, by_candidate in table.losses.items()
        for (method, lr), by_seed in by_candidate.items()
        for seed, loss in by_seed.items()
    ]
    return {"name": table.name, "runs": table.runs, "seconds": table.seconds, "losses": rows}


def table_from_json(data: dict) -> SeedTable:
    losses: dict = {}
    for row in data["losses"]:
        losses.setdefault(row["arch"], {}).setdefault((row["method"], row["lr"]), {})[row["seed"]] = row["loss"]
    return SeedTable(data["name"], losses, runs=data["runs"], seconds=data["seconds"])


def load_truth(case: Case, args: argparse.Namespace, device: str) -> tuple[SeedTable, SeedTable, str]:
    """The SGD grid's table and the SGD+Adam one, from the cache or trained now, and where they are."""
    key = truth_key(case, args)
    path = args.cache / f"fidelity-truth-{case.name}-{key}.json"
    if path.is_file() and not args.refresh_truth:
        data = json.loads(path.read_text())
        sgd, adam = table_from_json(data["sgd"]), table_from_json(data["adam"])
        # Its seconds are from then: the seconds ratio compares like with like only on the same machine and load.
        note = f"read from {path} (trained {data['measured']}, torch {data['torch']}, {data['threads']} thread(s))"
        return sgd, merge_tables("sgd+adam", [sgd, adam]), note
    runs_dir = args.cache / "fidelity-runs" / f"truth-{case.name}-{key}"
    if args.refresh_truth and runs_dir.exists():
        runs_dir = runs_dir.with_name(runs_dir.name + datetime.now().strftime("-%Y%m%d-%H%M%S"))
    sgd_runs = run_method(case, "sgd", args.truth_seeds, args.grid, runs_dir / "sgd", device)
    adam_runs = run_method(case, TRUTH_ADAM, args.truth_seeds, args.adam_grid, runs_dir / "adam", device)
    sgd = short_table("sgd", sgd_runs, case)
    adam = short_table("adam", adam_runs, case)
    write_json_atomic(path, {
        "case": case.name, "key": key, "measured": datetime.now().isoformat(timespec="seconds"),
        "torch": torch.__version__, "threads": torch.get_num_threads(), "runs_dir": str(runs_dir),
        "sgd": table_to_json(sgd), "adam": table_to_json(adam),
    })
    return sgd, merge_tables("sgd+adam", [sgd, adam]), f"written to {path}"


# -- the command line -------------------------------------------------------------------------
def rates(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of rates") from None
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: every rate must be positive")
    return values


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=None, help="zoo, close, digits, comma-separated (default: all; zoo with --small)")
    parser.add_argument("--methods", default=DEFAULT_METHODS,
                        help=f"screens: registered methods or portfolios a+b, comma-separated, or all (default: {DEFAULT_METHODS})")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per screen (default: 3; 1 with --small)")
    parser.add_argument("--truth-seeds", type=int, default=None, help="seeds of the truth's grids (default: 3; 1 with --small)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run, every case (default: the case's)")
    parser.add_argument("--subset", type=int, default=None, help="training examples kept, every case (default: all)")
    parser.add_argument("--grid", type=rates, default=None, help="the SGD grid (default: the decades 1e-5..10)")
    parser.add_argument("--adam-grid", type=rates, default=None, help="the Adam grid (default: 1e-4,1e-3,1e-2,0.1)")
    parser.add_argument("--small", action="store_true", help="two architectures, one seed, two epochs, a tiny subset")
    parser.add_argument("--refresh-truth", action="store_true", help="train the truth again instead of reading the cache")
    parser.add_argument("--replicates", type=int, default=None, help="bootstrap replicates (default: 2000; 200 with --small)")
    parser.add_argument("--top-k", type=int, default=3, help="the k of 'truth's best in the screen's top k' (default: 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1, so timings compare)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, ... (default: cpu)")
    parser.add_argument("--cache", type=Path, default=ROOT / ".benchmarks", help="truth cache and run folders (default: .benchmarks)")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the summary table to this file")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure to this file")
    args = parser.parse_args(argv)
    small = args.small
    args.cases = args.cases or ("zoo" if small else "zoo,close,digits")
    args.seeds = args.seeds or (1 if small else 3)
    args.truth_seeds = args.truth_seeds or (1 if small else 3)
    args.grid = args.grid or ((0.01, 0.1, 1.0) if small else DEFAULT_GRID)
    args.adam_grid = args.adam_grid or ((1e-3, 1e-2) if small else ADAM_GRID)
    args.replicates = args.replicates or (200 if small else 2000)
    return args


def chosen_cases(args: argparse.Namespace) -> list[Case]:
    cases = all_cases()
    chosen = []
    for name in (part.strip() for part in args.cases.split(",") if part.strip()):
        if name not in cases:
            close = difflib.get_close_matches(name, cases, n=1)
            raise AlraoUserError(f"unknown case {name!r}", hint=(f"did you mean {close[0]!r}? " if close else "")
                                 + f"the cases are {', '.join(cases)}")
        case = small_case(cases[name]) if args.small else cases[name]
        case = replace(case, epochs=args.epochs or case.epochs, subset=args.subset or case.subset)
        chosen.append(case)
    return chosen


def chosen_screens(text: str) -> list[tuple[str, ...]]:
    """Each screen as its methods: ``alrao+adam`` is ("alrao", "adam"); ``all`` every one-run method."""
    catalog = method_catalog()
    known = [info.name for info in catalog if info.name != TRUTH_ADAM]
    screens: list[tuple[str, ...]] = []
    for entry in (part.strip() for part in text.split(",") if part.strip()):
        if entry == "all":
            screens += [(name,) for name in known if not get_method(name).tuned_over_grid]
            continue
        methods = tuple(part.strip() for part in entry.split("+"))
        for method in methods:
            if method not in known:
                close = difflib.get_close_matches(method, known, n=1)
                raise AlraoUserError(f"unknown method {method!r} in --methods",
                                     hint=(f"did you mean {close[0]!r}? " if close else "") + f"known: {', '.join(known)}")
        screens.append(methods)
    return list(dict.fromkeys(screens))


# -- printing -------------------------------------------------------------------------------
def num(value: float | None, spec: str = ".2f") -> str:
    if value is None:
        return "—"
    if math.isinf(value):
        return "inf"
    return format(value, spec)


def pct(value: float | None) -> str:
    return "—" if value is None else ("inf" if math.isinf(value) else f"{100 * value:+.1f}%")


def interval(found) -> str:
    return "—" if found is None else f"{found.low:.2f}..{found.high:.2f}"


def fraction(found: Fidelity) -> str:
    if found.best_in_top_k is None:
        return "—"
    return f"{round(found.best_in_top_k * len(found.seeds))}/{len(found.seeds)}"


def markdown_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def summary_row(case: str, found: Fidelity) -> tuple[str, ...]:
    return (
        case, found.screen, found.truth, num(found.tau), interval(found.tau_interval), num(found.noise_floor.tau),
        num(found.tau_over_floor), num(found.rho), pct(found.regret), fraction(found), pct(found.median_gap),
        num(found.cost_runs), num(found.cost_seconds),
    )


def print_case(case: Case, sgd: SeedTable, truths: list[SeedTable], tables: dict[str, SeedTable],
               found: list[Fidelity], missing: list[MissingMethod], where: str) -> None:
    print(f"\n## {case.name}: {case.title}")
    print(f"{len(case.archs)} architectures, {case.epochs} epochs, batch {case.batch_size}, "
          f"{'all examples' if case.subset is None else f'subset {case.subset}'}; "
          f"truth over {len(sgd.seeds)} seed(s), {where}")
    realised = {truth.name: truth.realise(truth.seeds) for truth in truths}
    header = ("architecture", *(f"truth {name}" for name in realised), *(f"{name} (mean)" for name in tables))
    rows = []
    for arch in realised["sgd"]:
        cells = [num(values.get(arch), ".4f") for values in realised.values()]
        cells += [num(table.realise(table.seeds).get(arch), ".4f") for table in tables.values()]
        rows.append((arch, *cells))
    print(markdown_table(header, rows))
    for name, values in realised.items():
        finite = [v for v in values.values() if v is not None and v > 0]
        if len(finite) > 1:
            print(f"spread of the {name} truth: worst / best = {max(finite) / min(finite):.2f}")
    print()
    print(markdown_table(("screen", "truth", "tau", "tau 95%", "noise floor", "tau / floor", "rho", "rho 95%",
                          "regret", f"best in top {found[0].top_k if found else 3}", "median gap", "failed",
                          "runs / grid", "seconds / grid"),
                         [(f.screen, f.truth, num(f.tau), interval(f.tau_interval), num(f.noise_floor.tau),
                           num(f.tau_over_floor), num(f.rho), interval(f.rho_interval), pct(f.regret), fraction(f),
                           pct(f.median_gap), str(f.failed), num(f.cost_runs), num(f.cost_seconds)) for f in found]))
    for absent in missing:
        print(f"{absent.name}: not scored, {', '.join(absent.missing)} did not run ({absent.reason or 'no runs'})")


def seeds_rows(case: str, found: list[Fidelity]) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    counts = sorted({count for f in found for count in f.tau_by_seeds})
    header = ("case", "screen", "truth", *(f"tau, N={count}" for count in counts), "runs / grid at N=1")
    rows = [(case, f.screen, f.truth, *(num(f.tau_by_seeds.get(count)) for count in counts), num(f.cost_runs))
            for f in found]
    return header, rows


def as_json(found: Fidelity) -> dict:
    return {
        "screen": found.screen, "truth": found.truth, "seeds": list(found.seeds), "truth_seeds": list(found.truth_seeds),
        "tau": found.tau, "tau_interval": None if found.tau_interval is None else [found.tau_interval.low, found.tau_interval.high],
        "rho": found.rho, "rho_interval": None if found.rho_interval is None else [found.rho_interval.low, found.rho_interval.high],
        "noise_floor": found.noise_floor.tau, "noise_floor_pairs": [list(pair) for pair in found.noise_floor.pairs],
        "regret": found.regret, "best_in_top_k": found.best_in_top_k, "top_k": found.top_k,
        "median_gap": found.median_gap, "failed": found.failed,
        "tau_by_seeds": {str(count): tau for count, tau in found.tau_by_seeds.items()},
        "runs": found.runs, "seconds": found.seconds, "cost_runs": found.cost_runs, "cost_seconds": found.cost_seconds,
    }


# -- main -------------------------------------------------------------------------------------
def benchmark_case(case: Case, screens: list[tuple[str, ...]], args: argparse.Namespace, stamp: str):
    sgd, both, where = load_truth(case, args, args.device)
    tables: dict[str, SeedTable] = {}
    reasons: dict[str, str] = {}
    for method in dict.fromkeys(method for screen in screens for method in screen):
        run_dir = args.cache / "fidelity-runs" / stamp / f"{case.name}-{method}"
        try:
            runs = run_method(case, method, args.seeds, args.grid, run_dir, args.device)
        except AlraoUserError as error:  # not one architecture could train with it: a missing package, say
            reasons[method] = error.message
            print(f"{case.name}: {method} did not run: {error.message}", file=sys.stderr)
            continue
        tables[method] = short_table(method, runs, case)
    found, missing = [], []
    for screen in screens:
        table = portfolio(screen, tables, reasons)
        if isinstance(table, MissingMethod):
            missing.append(table)
            continue
        for truth in (sgd, both):
            found.append(fidelity(table, truth, grid=sgd, top_k=args.top_k, counts=range(1, args.seeds + 1),
                                  replicates=args.replicates))
    print_case(case, sgd, [sgd, both], tables, found, missing, where)
    return found, missing


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        cases = chosen_cases(args)
        screens = chosen_screens(args.methods)
    except AlraoUserError as error:
        print(f"error: {error.message}" + (f" ({error.hint})" if error.hint else ""), file=sys.stderr)
        return 2
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    start = time.perf_counter()
    print(f"# Fidelity of one-run screens ({datetime.now():%Y-%m-%d}, torch {torch.__version__}, "
          f"{args.threads} thread(s), device {args.device})")
    print(f"screens: {', '.join('+'.join(screen) for screen in screens)}; {args.seeds} seed(s) each; "
          f"SGD grid {','.join(f'{r:g}' for r in args.grid)}; Adam grid {','.join(f'{r:g}' for r in args.adam_grid)}")
    summary: list[tuple[str, ...]] = []
    seeds_header: tuple[str, ...] = ()
    seeds_table: list[tuple[str, ...]] = []
    report: dict = {"cases": {}}
    for case in cases:
        if case.needs and importlib.util.find_spec(case.needs) is None:
            print(f"\n## {case.name}: skipped, it needs {case.needs} (pip install scikit-learn)")
            continue
        try:
            found, missing = benchmark_case(case, screens, args, stamp)
        except (Interrupted, AlraoUserError) as stop:
            return stopped(case, stop)
        summary += [summary_row(case.name, f) for f in found]
        seeds_header, rows = seeds_rows(case.name, found)
        seeds_table += rows
        report["cases"][case.name] = {
            "archs": list(case.short.values()), "epochs": case.epochs, "subset": case.subset,
            "figures": [as_json(f) for f in found],
            "missing": [{"screen": m.name, "missing": list(m.missing), "reason": m.reason} for m in missing],
        }
    print("\n## What more seeds buy: tau of an N-seed screen (the mean over N-seed subsets; it costs N times the runs)")
    print(markdown_table(seeds_header, seeds_table) if seeds_table else "(nothing measured)")
    table = markdown_table(SUMMARY_COLUMNS, summary)
    print("\n## Summary across cases")
    print(table)
    print(f"\nbenchmark wall time {time.perf_counter() - start:.1f}s")
    if args.markdown:
        args.markdown.write_text(table + "\n")
    if args.json:
        write_json_atomic(args.json, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
