"""Runs side by side: the default screen one run at a time against ``--workers 2``.

Target (issue 17): on a 2-core machine, ``--workers 2`` takes at most 0.6 of the
sequential wall time, with the same ranking. Both are ``python -m alrao_cli screen``
subprocesses, as a user runs them, timed whole (start-up, the local Ray's start for the
workers, data, training, the final table), in alternating rounds so that a noisy machine
slows both alike; the ratio of the medians is printed. Peak memory is the largest sum of
resident memory over the command's process tree (the command, and for the workers its
Ray: GCS, raylet, worker processes), sampled from ``/proc`` every 0.1 s (Linux only; elsewhere
it reads n/a). Nothing is asserted: the script prints and exits 0.

    python benchmarks/parallel.py               # the default screen (the zoo, 10 epochs), 2 rounds
    python benchmarks/parallel.py --small       # two models, 1 epoch, 1 round: a quick check
    python benchmarks/parallel.py --ray-address HOST:PORT   # join a running Ray (no start-up counted)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SMALL = ["mlp", "cnn1d", "--subset", "1024", "--epochs", "1"]
TARGET = 0.6


@dataclass(frozen=True, slots=True)
class Measured:
    seconds: float
    peak_mib: float | None
    ranking: tuple[str, ...]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="two models, a subset, one epoch, one round")
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 2; 1 with --small)")
    parser.add_argument("--workers", type=int, default=2, help="runs at once in the parallel case (default 2)")
    parser.add_argument("--ray-address", default=None, help="join this Ray instead of starting one per command")
    return parser.parse_args(argv)


def process_tree_rss(root: int) -> int | None:
    """Bytes of resident memory of ``root`` and all its descendants; None without /proc."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    children: dict[int, list[int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # ended while being read
        parent = int(stat.rsplit(")", 1)[1].split()[1])  # the name in parentheses may hold spaces
        children.setdefault(parent, []).append(int(entry.name))
    total, todo = 0, [root]
    page = os.sysconf("SC_PAGE_SIZE")
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            total += int((proc / str(pid) / "statm").read_text().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
    return total


def measure(argv: list[str]) -> Measured:
    """Run ``argv`` (a screen with --json), sampling its process tree's memory meanwhile."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peak: list[int | None] = [None]

    def sample() -> None:
        while process.poll() is None:
            rss = process_tree_rss(process.pid)
            if rss is not None:
                peak[0] = max(peak[0] or 0, rss)
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, _ = process.communicate()
    seconds = time.perf_counter() - started
    sampler.join()
    if process.returncode not in (0, 1):  # 1: some run failed or diverged, still a result
        raise SystemExit(f"{' '.join(argv)} exited with {process.returncode}")
    ranking = tuple(entry["arch"] for entry in json.loads(stdout)["ranking"])
    return Measured(seconds, None if peak[0] is None else peak[0] / 2**20, ranking)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rounds = args.rounds or (1 if args.small else 2)
    study = SMALL if args.small else []
    parallel_flags = ["--workers", str(args.workers)]
    if args.ray_address:
        parallel_flags += ["--ray-address", args.ray_address]
    results: dict[str, list[Measured]] = {"sequential": [], "parallel": []}
    with tempfile.TemporaryDirectory(prefix="alrao-parallel-") as folder:
        for round_ in range(rounds):
            for case, flags in (("sequential", []), ("parallel", parallel_flags)):
                out = Path(folder) / f"{case}-{round_}"
                command = [sys.executable, "-m", "alrao_cli", "screen", *study, "--no-plots", "--json", "--out", str(out)]
                results[case].append(measure([*command, *flags]))
                print(f"round {round_ + 1}/{rounds} {case}: {results[case][-1].seconds:.1f} s", file=sys.stderr)
    seconds = {case: statistics.median(m.seconds for m in runs) for case, runs in results.items()}
    peaks = {case: max((m.peak_mib for m in runs if m.peak_mib is not None), default=None) for case, runs in results.items()}
    same = {m.ranking for m in results["sequential"] + results["parallel"]}

    def mib(value: float | None) -> str:
        return "n/a" if value is None else f"{value:,.0f}"

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{'small screen' if args.small else 'default screen'}, {rounds} round(s), {cores} cores\n")
    print("| case | median wall s | peak memory MiB |")
    print("|---|---|---|")
    print(f"| one run at a time | {seconds['sequential']:.1f} | {mib(peaks['sequential'])} |")
    print(f"| --workers {args.workers} | {seconds['parallel']:.1f} | {mib(peaks['parallel'])} |")
    ratio = seconds["parallel"] / seconds["sequential"]
    print(f"\nwall-time ratio {ratio:.2f} (target <= {TARGET}); same ranking in every run: {'yes' if len(same) == 1 else 'no'}")
    if len(same) > 1:
        for ranking in sorted(same):
            print("  " + " > ".join(ranking))


if __name__ == "__main__":
    main()
