"""`alrao check` over every torchvision classification model that takes the given input size.

Issue 16: `alrao check` must never fail a healthy model. The only failures this script
should show are models Alrao cannot wrap (a convolutional head, as in squeezenet); any
other failure is a defect, of the model or of alrao, to look into.

Each model goes to a process of its own, killed past `--timeout` seconds ("timed out"),
which builds it on the meta device (no memory, no time; on the CPU where its builder
computes with tensors, as regnet's does), counts its parameters and sends two examples
of the given shape through it:

- over the parameter ceiling (`--max-params`, in millions): "skipped", with the count;
- an input that fails where torchvision's own 224x224 goes through: "not run: input too
  small", with the model's error (inception_v3 needs 75 px, the ViTs exactly 224);
- otherwise `alrao check torchvision:NAME` runs there, through the function the command
  calls (`alrao_cli.study.check.run_checks`), on noise images of the given shape with
  random labels (this file is the `--data python:` factory): "passed", or "failed: ITEM"
  with the item's one-line reason.

It prints a Markdown table (model, parameters, result, reason: the failure's, or the
notes of a pass; seconds of the check itself, start-up not counted) and a summary line.
Progress goes to stderr. Exact model names are not looked up: the child says if one is
unknown (its build item fails), and the command starts faster.

    python benchmarks/check_torchvision.py                        # 3x32x32, 10 classes, <= 150 M parameters
    python benchmarks/check_torchvision.py resnet18 'squeezenet*'  # names or shell-style patterns
    python benchmarks/check_torchvision.py --size 64 --max-params 50 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path

SCRIPT = Path(__file__).resolve()
# The data the factory makes, as "channels,height,width,classes": set by the model's process.
DATA_VARIABLE = "CHECK_TORCHVISION_DATA"
# The input size torchvision's classifiers are made for: a model that takes it but not the
# given size needs a larger input, rather than being broken.
REFERENCE_SIZE = 224
TRAIN_EXAMPLES, VAL_EXAMPLES = 32, 8  # the check uses the first 16 training examples
RESULTS = ["passed", "failed", "not run: input too small", "skipped", "timed out", "error"]


@dataclass(frozen=True, slots=True)
class Row:
    """One model's line of the table; ``seconds`` is None where no check ran."""

    model: str
    params: int | None
    result: str
    reason: str
    seconds: float | None = None


# -- in the model's process ---------------------------------------------------------------
def random_images(seed: int = 0):
    """The ``--data python:`` factory: noise images with random labels, of the shape in $CHECK_TORCHVISION_DATA."""
    import torch
    from torch.utils.data import TensorDataset

    channels, height, width, classes = (int(part) for part in os.environ[DATA_VARIABLE].split(","))
    generator = torch.Generator().manual_seed(seed)

    def split(count: int) -> TensorDataset:
        images = torch.randn(count, channels, height, width, generator=generator)
        return TensorDataset(images, torch.randint(0, classes, (count,), generator=generator))

    return split(TRAIN_EXAMPLES), split(VAL_EXAMPLES)


def one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def build(name: str, classes: int):
    """The untrained model, on the meta device where its builder allows it, else on the CPU."""
    import torch
    import torchvision.models

    try:
        with warnings.catch_warnings(), torch.device("meta"):
            warnings.simplefilter("ignore")  # googlenet's and inception's notes on their init
            return torchvision.models.get_model(name, weights=None, num_classes=classes)
    except NotImplementedError:  # a builder that reads tensor values (regnet's widths) cannot use meta
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torchvision.models.get_model(name, weights=None, num_classes=classes)


def input_error(model, shape: tuple[int, ...]) -> str | None:
    """Why two examples of ``shape`` do not go through the model in eval mode; None if they do.

    An operation the meta device lacks says nothing about the model: None, and the
    check's forward item decides.
    """
    import torch

    device = next(model.parameters()).device
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(2, *shape, device=device))
    except NotImplementedError:
        return None
    except Exception as error:  # noqa: BLE001 - a model may raise anything on a wrong size
        return one_line(error)
    return None


def screen(name: str, args: argparse.Namespace) -> Row | int | None:
    """The row of a model that is not checked (too large, input too small), else its parameter count.

    A model that does not build is checked all the same (count None): its build item says why.
    """
    try:
        model = build(name, args.classes)
    except Exception:  # noqa: BLE001 - the check reports it, in its own words
        return None
    params = sum(parameter.numel() for parameter in model.parameters())
    if params > args.max_params * 1e6:
        return Row(name, params, "skipped", f"{params / 1e6:.1f} M parameters, over the ceiling of {args.max_params:g} M")
    error = input_error(model, (args.channels, args.size, args.size))
    if error is not None and input_error(model, (args.channels, REFERENCE_SIZE, REFERENCE_SIZE)) is None:
        return Row(name, params, "not run: input too small", error)
    return params


def check(name: str, params: int | None, args: argparse.Namespace) -> Row:
    """``alrao check torchvision:NAME --data python:THIS_FILE:random_images``, as the command runs it in-process."""
    from alrao_cli.data.load import load_data
    from alrao_cli.data.spec import DataSpec
    from alrao_cli.study.check import run_checks

    os.environ[DATA_VARIABLE] = f"{args.channels},{args.size},{args.size},{args.classes}"
    started = time.perf_counter()
    data = load_data(DataSpec(source=f"python:{SCRIPT}:random_images", seed=args.seed))
    (result,) = run_checks([f"torchvision:{name}"], data, steps=args.steps, seed=args.seed)
    seconds = time.perf_counter() - started
    failed = [item for item in result.items if item.status == "failed"]
    if failed:
        return Row(name, params, f"failed: {failed[0].name}", failed[0].reason, seconds)
    notes = [f"{item.name}: {short_note(item.note)}" for item in result.items if item.note]
    return Row(name, params, "passed", "; ".join(notes), seconds)


def short_note(note: str) -> str:
    """A note that lists many parameters, with them counted by their last name (``36 *.layer_scale``)."""
    text, found, listed = note.rpartition(" for: ")
    names = listed.split(", ")
    if not found or len(names) <= 3:
        return note
    counts = Counter(name.rpartition(".")[2] for name in names)
    return f"{text} for: " + ", ".join(f"{count} *.{last}" for last, count in counts.items())


def model_process(name: str, args: argparse.Namespace) -> None:
    """Screen and check one model; its row goes to ``args.row`` as JSON."""
    import torch

    torch.set_num_threads(1)  # as alrao check does: the probes are tiny
    row = screen(name, args)
    if not isinstance(row, Row):
        # What the command reports if this process is killed during the check: the count, at least.
        Path(args.row).write_text(json.dumps(asdict(Row(name, row, "timed out", ""))))
        row = check(name, row, args)
    Path(args.row).write_text(json.dumps(asdict(row)))


# -- in the command's process ----------------------------------------------------------------
def selected_models(patterns: list[str]) -> list[str]:
    """torchvision's classification models matching any pattern, in alrao's natural order.

    Names without a wildcard are kept as given, in that order, without importing torchvision.
    """
    if not any(set(pattern) & set("*?[") for pattern in patterns):
        return list(dict.fromkeys(patterns))
    from alrao_cli.sources.registry import list_torchvision_models

    names = set()
    for pattern in patterns:
        matched = list_torchvision_models(pattern)
        if not matched:
            sys.exit(f"error: no torchvision classification model matches {pattern!r}")
        names.update(matched)
    return [name for name in list_torchvision_models() if name in names]


def run_model(name: str, args: argparse.Namespace, row_file: Path) -> Row:
    """One model's row, from a process of its own killed past ``args.timeout`` seconds."""
    options = ["--size", args.size, "--channels", args.channels, "--classes", args.classes,
               "--max-params", args.max_params, "--seed", args.seed, "--steps", args.steps]
    command = [sys.executable, str(SCRIPT), name, *map(str, options), "--one", "--row", str(row_file)]
    started = time.perf_counter()
    try:
        done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        params = json.loads(row_file.read_text())["params"] if row_file.exists() else None
        return Row(name, params, "timed out", f"no result in {args.timeout:g} s", time.perf_counter() - started)
    if done.returncode != 0 or not row_file.exists():
        last = [line.strip() for line in done.stderr.splitlines() if line.strip()][-1:] or ["no output"]
        return Row(name, None, "error", f"exit code {done.returncode}: {last[0]}", time.perf_counter() - started)
    return Row(**json.loads(row_file.read_text()))


def cell(text: str) -> str:
    return text.replace("|", "\\|") if text else "—"


def table(rows: list[Row]) -> list[str]:
    lines = ["| model | parameters | result | reason | seconds |", "|---|---:|---|---|---:|"]
    for row in rows:
        params = f"{row.params / 1e6:.1f} M" if row.params is not None else "—"
        seconds = f"{row.seconds:.1f}" if row.seconds is not None else "—"
        lines.append(f"| {row.model} | {params} | {cell(row.result)} | {cell(row.reason)} | {seconds} |")
    return lines


def summary(rows: list[Row]) -> str:
    """``N models: 3 passed, 1 failed, ...``: failures counted together whatever their item."""
    kinds = ["failed" if row.result.startswith("failed") else row.result for row in rows]
    return f"{len(rows)} models: " + ", ".join(f"{kinds.count(kind)} {kind}" for kind in RESULTS if kind in kinds)


def positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("patterns", nargs="*", default=["*"], help="model names or shell-style patterns (default: all)")
    parser.add_argument("--size", type=positive(int), default=32, help="image height and width (default 32)")
    parser.add_argument("--channels", type=positive(int), default=3, help="image channels (default 3)")
    parser.add_argument("--classes", type=positive(int), default=10, help="number of classes (default 10)")
    parser.add_argument("--max-params", type=positive(float), default=150.0,
                        help="skip models with more parameters than this, in millions (default 150)")
    parser.add_argument("--timeout", type=positive(float), default=600.0, help="seconds per model (default 600)")
    parser.add_argument("--seed", type=int, default=0, help="alrao check --seed (default 0)")
    parser.add_argument("--steps", type=int, default=5, help="alrao check --steps (default 5)")
    parser.add_argument("--jobs", type=positive(int), default=1, help="models at once, one process each (default 1)")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # in a model's process
    parser.add_argument("--row", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.steps < 2:
        parser.error(f"--steps must be at least 2 (the train item compares later losses with the first), got {args.steps}")
    if args.one:
        model_process(args.patterns[0], args)
        return

    names = selected_models(args.patterns)
    with tempfile.TemporaryDirectory(prefix="check-torchvision-") as folder:

        def row_of(name: str) -> Row:
            row = run_model(name, args, Path(folder) / f"{names.index(name)}.json")
            print(f"{name}: {row.result}", file=sys.stderr, flush=True)
            return row

        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            rows = list(pool.map(row_of, names))
    print(
        f"alrao check, torchvision {version('torchvision')} classification models: input "
        f"{args.channels}x{args.size}x{args.size}, {args.classes} classes, seed {args.seed}, {args.steps} steps; "
        f"torch {version('torch')}, {os.cpu_count()} CPU core(s)\n"
    )
    print("\n".join(table(rows)))
    print(f"\n{summary(rows)}")


if __name__ == "__main__":
    main()
