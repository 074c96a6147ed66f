"""Reversible-HD: what its exact hypergradient costs, and what its tuned schedule reaches.

Two measurements, printed as tables:

1. **Cost against the run's length.** One hypergradient of a T-step run (Algorithm 1, then
   its exact reversal, Algorithm 2) against a plain floating-point run of the same T steps,
   on the paper's kind of model (an MLP of two hidden layers of 50 units, on MNIST-1D).
   Each T runs in a fresh child process, so that its peak resident memory (ru_maxrss) is
   its own: the memory above the process's state before the run must stay flat in T (only
   the information buffer grows, by ~0.15 bits per weight per step at momentum 0.9).
2. **Quality on the small zoo models.** A screen with ``reversible-hd`` (K meta-iterations)
   beside SGD at every rate of the decade grid, same epochs: the validation loss of the tuned
   schedule against the best grid point, and the wall time against one SGD run.

Run: python benchmarks/reversible.py [--steps 50,100,200,400] [--archs mlp,cnn1d] [--meta-iters 5]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from alrao_cli.config.schema import build_config
from alrao_cli.data.batches import batches
from alrao_cli.data.load import cached_data
from alrao_cli.data.spec import DataSpec
from alrao_cli.learned import ReversibleProblem, Schedule, reverse_hypergradient, train_reversibly
from alrao_cli.study.driver import run_study

BATCH = 32


def paper_mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(40, 50), nn.ReLU(), nn.Linear(50, 50), nn.ReLU(), nn.Linear(50, 10))


def problem_of(model: nn.Module, steps: int) -> tuple[ReversibleProblem, torch.Tensor]:
    data = cached_data(DataSpec(source="mnist1d", subset=2000))
    train = list(batches(data.train, BATCH, shuffle=True, seed=0, epoch=0))
    names = [name for name, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    sizes = [p.numel() for p in model.parameters()]

    def loss(w, batch):
        x, y = batch
        weights = {n: part.view(s) for n, part, s in zip(names, w.split(sizes), shapes)}
        return F.cross_entropy(functional_call(model, weights, (x,)), y)

    val = next(batches(data.val, 256, shuffle=False, seed=0, epoch=0))
    problem = ReversibleProblem(loss, lambda t: train[t % len(train)], val, sizes, steps)
    return problem, torch.cat([p.detach().flatten() for p in model.parameters()])


def child(steps: int) -> dict[str, float]:
    """One T: the hypergradient's time and memory, then the plain run's time (this process only)."""
    model = paper_mlp()
    problem, w0 = problem_of(model, steps)
    schedule = Schedule.constant(4, len(problem.layer_sizes), 0.1, 0.9)
    problem.loss(w0, problem.train_batch(0))  # the data loaded and the kernels warm before measuring
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    state = train_reversibly(problem, w0, schedule)
    buffer_bytes = state.buffer.nbytes()
    reverse_hypergradient(problem, state, schedule, w0.dtype)
    hyper_seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    plain = paper_mlp()
    optimizer = torch.optim.SGD(plain.parameters(), lr=0.1, momentum=0.9)
    start = time.perf_counter()
    for t in range(steps):
        x, y = problem.train_batch(t)
        optimizer.zero_grad()
        F.cross_entropy(plain(x), y).backward()
        optimizer.step()
    plain_seconds = time.perf_counter() - start
    return {"steps": steps, "hyper_s": hyper_seconds, "plain_s": plain_seconds,
            "rss_growth_mb": (peak - before) / 1024, "buffer_kb": buffer_bytes / 1024}


def cost_table(steps_list: list[int], threads: int) -> None:
    weights = sum(p.numel() for p in paper_mlp().parameters())
    print(f"\n1. One hypergradient vs a plain run of T steps (MLP 40-50-50-10, {weights} weights, batch {BATCH}, "
          f"momentum 0.9, 4 blocks; each T in a fresh process)")
    print(f"{'T':>6} | {'hypergradient s':>15} | {'plain run s':>11} | {'ratio':>6} | {'peak RSS growth MB':>18} | {'info buffer KB':>14}")
    rows = []
    for steps in steps_list:
        out = subprocess.run([sys.executable, __file__, "--child", str(steps), "--threads", str(threads)], capture_output=True, text=True, check=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{row['steps']:>6} | {row['hyper_s']:15.2f} | {row['plain_s']:11.2f} | {row['hyper_s'] / row['plain_s']:6.1f} | "
              f"{row['rss_growth_mb']:18.1f} | {row['buffer_kb']:14.1f}")
    if len(rows) >= 2:  # the first call's one-time costs (autograd's double-backward set-up) cancel out
        first, last = rows[0], rows[-1]
        marginal = (last["hyper_s"] - first["hyper_s"]) / (last["plain_s"] - first["plain_s"])
        print(f"per extra step, T {first['steps']} -> {last['steps']}: the hypergradient costs {marginal:.1f}x a plain step")


def quality_table(archs: list[str], meta_iters: int, epochs: int, subset: int) -> None:
    print(f"\n2. reversible-hd ({meta_iters} meta-iterations) against SGD's decade grid, MNIST-1D subset {subset}, "
          f"{epochs} epochs, batch {BATCH}, seed 0")
    print(f"{'architecture':<12} | {'reversible val':>14} | {'best SGD val':>12} | {'best lr':>7} | {'gap':>7} | "
          f"{'reversible s':>12} | {'one SGD run s':>13} | {'time ratio':>10}")
    with tempfile.TemporaryDirectory() as folder:
        config = build_config(None, {
            "archs": archs, "method": "reversible-hd", "baselines": ["sgd-grid"], "meta_iters": meta_iters,
            "epochs": epochs, "subset": subset, "batch_size": BATCH, "plots": False, "out": str(Path(folder) / "run"),
        })
        study = run_study(config, "screen").study
    for arch in archs:
        runs = [run for run in study.runs if run.arch == arch]
        (rev,) = [run for run in runs if run.method == "reversible-hd"]
        sgd = [run for run in runs if run.method == "sgd" and run.best_val_loss is not None]
        best = min(sgd, key=lambda run: run.best_val_loss)
        mean_sgd_seconds = statistics.median(run.seconds for run in sgd)
        rev_loss = rev.best_val_loss
        gap = f"{rev_loss / best.best_val_loss - 1:+.1%}" if rev_loss is not None else "-"
        shown = f"{rev_loss:.4f}" if rev_loss is not None else rev.status
        print(f"{arch:<12} | {shown:>14} | {best.best_val_loss:12.4f} | {best.lr:7g} | {gap:>7} | "
              f"{rev.seconds:12.1f} | {mean_sgd_seconds:13.1f} | {rev.seconds / mean_sgd_seconds:10.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", default="50,100,200,400", help="run lengths T of table 1")
    parser.add_argument("--archs", default="mlp,cnn1d", help="zoo models of table 2")
    parser.add_argument("--meta-iters", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--subset", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child is not None:
        print(json.dumps(child(args.child)))
        return
    print(f"torch {torch.__version__}, {args.threads} thread(s)")
    cost_table([int(part) for part in args.steps.split(",")], args.threads)
    quality_table(args.archs.split(","), args.meta_iters, args.epochs, args.subset)


if __name__ == "__main__":
    main()
