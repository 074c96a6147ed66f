"""Time one Alrao-SGD training step against plain torch.optim.SGD, side by side.

Both contenders train the same architecture on the same batches in the same process with
the same threads; steps are interleaved in rounds so that machine noise hits both alike,
and the table reports medians and their ratio. Run: python benchmarks/step_overhead.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from alrao_cli import AlraoModel, AlraoSGD, alrao_step
from alrao_cli.sources.build import build_model


def deep_mlp() -> nn.Module:
    layers: list[nn.Module] = [nn.Linear(256, 256), nn.BatchNorm1d(256), nn.ReLU()]
    for _ in range(7):
        layers += [nn.Linear(256, 256), nn.BatchNorm1d(256), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(256, 10))


CASES = [
    # name, factory, input shape, batch size, target ratio
    ("mlp 8x[Linear(256)+BN]", deep_mlp, (256,), 128, 1.15),
    ("zoo cnn1d (MNIST-1D)", lambda: build_model("cnn1d", 10, (40,)), (40,), 32, None),
    ("resnet18 32x32", lambda: torchvision.models.resnet18(num_classes=10), (3, 32, 32), 32, 1.05),
]


def plain_step(model, optimizer, x, y) -> None:
    optimizer.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    optimizer.step()


def measure(factory, shape, batch, rounds: int, warmup: int) -> tuple[float, float]:
    torch.manual_seed(0)
    plain = factory()
    plain_opt = torch.optim.SGD(plain.parameters(), lr=0.01)
    torch.manual_seed(0)
    alrao = AlraoModel(factory(), num_classes=10)
    alrao_opt = AlraoSGD(alrao)
    x, y = torch.randn(batch, *shape), torch.randint(0, 10, (batch,))
    contenders = {
        "plain": lambda: plain_step(plain, plain_opt, x, y),
        "alrao": lambda: alrao_step(alrao, alrao_opt, x, y),
    }
    for _ in range(warmup):
        for step in contenders.values():
            step()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, step in contenders.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return statistics.median(times["plain"]) * 1e3, statistics.median(times["alrao"]) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3, help="independent measurements per case (fresh models)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, median of {args.rounds} steps, "
          f"{args.repeats} repeats (ratio: median, and the range over repeats)")
    print(f"{'case':<26} | {'sgd ms':>8} | {'alrao ms':>8} | {'ratio':>6} | {'range':>11} | target")
    for name, factory, shape, batch, target in CASES:
        rounds = args.rounds if "resnet" not in name else max(20, args.rounds // 10)
        timings = [measure(factory, shape, batch, rounds, args.warmup) for _ in range(args.repeats)]
        ratios = [alrao_ms / plain_ms for plain_ms, alrao_ms in timings]
        plain_ms = statistics.median(plain for plain, _ in timings)
        alrao_ms = statistics.median(alrao for _, alrao in timings)
        goal = f"<= {target:.2f}" if target else "-"
        spread = f"{min(ratios):.3f}-{max(ratios):.3f}"
        print(f"{name:<26} | {plain_ms:8.3f} | {alrao_ms:8.3f} | {statistics.median(ratios):6.3f} | {spread:>11} | {goal}")


if __name__ == "__main__":
    main()
