"""What the default ``alrao screen`` costs: wall time and peak memory, as a user runs it.

Runs ``python -m alrao_cli screen --quiet --out <tmpdir>`` in a subprocess (the whole zoo
on MNIST-1D, the default epochs, on the default device: ``auto``, so a GPU where there is
one), then prints its final table, the device the screen chose, the wall time
of the whole command (start-up, data, training, plots), its peak resident memory
(``getrusage(RUSAGE_CHILDREN).ru_maxrss``), and each architecture's training seconds from
``results.json``. Nothing is asserted; the exit code is 0 unless the screen itself failed
to produce results.

    python benchmarks/screen_default.py                               # the real figures
    python benchmarks/screen_default.py --epochs 1 --archs mlp cnn1d  # a quick check
    python benchmarks/screen_default.py --device cpu                  # the CPU on a GPU machine
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="+", default=[], help="architectures (default: the whole zoo)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default: the tool's default)")
    parser.add_argument("--device", default=None, help="device of the screen (default: the tool's, auto)")
    parser.add_argument("--out", type=Path, default=None, help="keep the run directory here (default: a temporary one)")
    return parser.parse_args(argv)


def peak_rss_mb(usage: resource.struct_rusage) -> float:
    """ru_maxrss is in kilobytes on Linux and in bytes on macOS."""
    scale = 1 if platform.system() == "Darwin" else 1024
    return usage.ru_maxrss * scale / 2**20


def screen_command(run_dir: Path, args: argparse.Namespace) -> list[str]:
    command = [sys.executable, "-m", "alrao_cli", "screen", *args.archs, "--quiet", "--out", str(run_dir)]
    if args.epochs is not None:
        command += ["--epochs", str(args.epochs)]
    if args.device:
        command += ["--device", args.device]
    return command


def per_arch_seconds(results: dict) -> dict[str, dict]:
    """Training seconds, status and best validation loss per architecture, in screen order."""
    table: dict[str, dict] = {}
    for run in results["runs"]:
        losses = [record["val_loss"] for record in run.get("history", []) if record.get("val_loss") is not None]
        entry = table.setdefault(run["arch"], {"seconds": 0.0, "status": "ok", "val_loss": None, "epochs": 0})
        entry["seconds"] += run["seconds"] or 0.0
        entry["epochs"] = max(entry["epochs"], len(run.get("history", [])))
        if run["status"] != "ok":
            entry["status"] = run["status"]
        if losses:
            best = min(losses)
            entry["val_loss"] = best if entry["val_loss"] is None else min(entry["val_loss"], best)
    return table


def resolved_device(results: dict) -> str:
    """The device the screen trained on, as its runs recorded it (``auto`` resolved)."""
    devices = {run["spec"]["device"] for run in results["runs"] if run.get("spec")}
    return ", ".join(sorted(devices)) or "unknown (no run started)"


def run(args: argparse.Namespace, run_dir: Path) -> int:
    command = screen_command(run_dir, args)
    print("$ " + " ".join(command), file=sys.stderr, flush=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)

    print(done.stdout, end="")
    if done.returncode not in (0, 1):  # 1: some architecture failed or diverged, still a screen
        print(done.stderr, file=sys.stderr, end="")
    results_file = run_dir / "results.json"
    if not results_file.is_file():
        print(f"the screen left no results (exit code {done.returncode})", file=sys.stderr)
        return 1
    results = json.loads(results_file.read_text())
    archs = per_arch_seconds(results)

    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    trained = sum(entry["seconds"] for entry in archs.values())
    print()
    asked = args.device or "auto (the default)"
    print(f"default alrao screen: {len(archs)} architecture(s), device {asked} -> {resolved_device(results)}, "
          f"{os.cpu_count()} CPU core(s)")
    print(f"exit code        {done.returncode}")
    print(f"wall time        {wall:.1f} s  ({wall / 60:.1f} min)")
    print(f"CPU time         {cpu:.1f} s")
    print(f"peak memory      {peak_rss_mb(after):.0f} MB  (max RSS of the screen process)")
    print(f"training         {trained:.1f} s over all runs; start-up, data and plots {wall - trained:.1f} s")
    print()
    print(f"{'architecture':<18} {'seconds':>9} {'epochs':>7} {'best val loss':>14}  status")
    for arch, entry in archs.items():
        loss = "—" if entry["val_loss"] is None else f"{entry['val_loss']:.4f}"
        print(f"{arch:<18} {entry['seconds']:>9.1f} {entry['epochs']:>7} {loss:>14}  {entry['status']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        return run(args, args.out)
    with tempfile.TemporaryDirectory(prefix="alrao-screen-bench-") as folder:
        return run(args, Path(folder) / "run")


if __name__ == "__main__":
    raise SystemExit(main())
