"""Start-up: from the command to the first training step, against `import torch` alone.

Target (issue 12): at most 2x the time of `import torch` on the same machine (goal 1.5x).
Both are measured as fresh processes, in alternating rounds, and the ratio of medians is
printed, since absolute times swing between runs on a shared machine.

The screen's first step is caught by a tiny driver script that replaces the Alrao
learner's `train_step` with one that exits at once: everything before it (parsing, the
config, the plan, loading MNIST-1D from its cache, building and probing the model,
wrapping it) is counted, nothing after.

    python benchmarks/startup.py --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIRST_STEP = """
import os, sys
import alrao_cli.study.methods.alrao as alrao
def stop(self, x, y):
    os._exit(0)
alrao.AlraoLearner.train_step = stop
from alrao_cli.cli.app import main
sys.argv = ["alrao", "screen", "mlp", "--steps", "1", "--no-plots", "-q", "--device", "cpu", "--out", sys.argv[1]]
main()
"""


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        timed([sys.executable, "-c", "from alrao_cli.data.load import load_data; from alrao_cli.data.spec import DataSpec; load_data(DataSpec())"])  # the MNIST-1D cache
        torch_times, screen_times = [], []
        for round_ in range(args.rounds):
            torch_times.append(timed([sys.executable, "-c", "import torch"]))
            screen_times.append(timed([sys.executable, "-c", FIRST_STEP, str(Path(folder) / f"run{round_}")]))
    torch_median, screen_median = statistics.median(torch_times), statistics.median(screen_times)
    print("| case | median s | range s |")
    print("|---|---|---|")
    print(f"| `import torch` | {torch_median:.2f} | {min(torch_times):.2f}-{max(torch_times):.2f} |")
    print(f"| `alrao screen mlp` to its first step | {screen_median:.2f} | {min(screen_times):.2f}-{max(screen_times):.2f} |")
    print(f"\nratio {screen_median / torch_median:.2f} (target <= 2.0, goal 1.5)")


if __name__ == "__main__":
    main()
