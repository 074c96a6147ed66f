"""Helpers shared by several test files: model sources, generated data, result comparisons."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# Its output layer is registered before a hidden layer that also has num_classes units:
# only a forward pass tells which Linear's output the model returns.
HEAD_FIRST_MODEL = """
class HeadFirst(nn.Module):
    def __init__(self, num_classes, input_shape):
        super().__init__()
        self.head = nn.Linear(num_classes, num_classes)
        self.body = nn.Linear(math.prod(input_shape), num_classes)

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))
"""

# Builds only with a `width` from the config's model_kwargs.
NEEDS_WIDTH_MODEL = """
class NeedsWidth(nn.Module):
    def __init__(self, num_classes, input_shape, width):
        super().__init__()
        self.body = nn.Linear(math.prod(input_shape), width)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))
"""


def quick_settings(subset: int, *, epochs: int | None = None, steps: int | None = None, **more) -> dict:
    """Config settings of a small, fast study: a subset of MNIST-1D, a short budget, no plots.

    Each test file picks its own size and budget (a resume test needs an epoch to interrupt,
    a failure test one step); the rest is the same everywhere.
    """
    budget = {"epochs": epochs} if steps is None else {"steps": steps}
    return {"subset": subset, **({} if epochs is None and steps is None else budget), "plots": False, **more}


def quick_flags(subset: int, *, epochs: int | None = None, steps: int | None = None, **more) -> list[str]:
    """The command-line flags of :func:`quick_settings` (``batch_size=8`` becomes ``--batch-size 8``)."""
    flags = []
    for key, value in quick_settings(subset, epochs=epochs, steps=steps, **more).items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else f"--no-{flag[2:]}")
        else:
            flags += [flag, str(value)]
    return flags


def write_files(folder: Path, files: dict[str, str]) -> Path:
    """Write each ``name: text`` of ``files`` into ``folder`` (created) and return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def two_colour_images(root: Path, per_class: int, size: int) -> Path:
    """An ImageFolder of two classes, red and blue squares, ``per_class`` PNGs each."""
    from PIL import Image

    for label, colour in enumerate([(200, 30, 30), (30, 30, 200)]):
        (root / f"class{label}").mkdir(parents=True)
        for index in range(per_class):
            Image.new("RGB", (size, size), colour).save(root / f"class{label}" / f"{index}.png")
    return root


def without_seconds(run: dict) -> dict:
    """A saved run with its wall-clock times taken out: what must be equal from run to run."""
    run = json.loads(json.dumps(run))
    run.pop("seconds")
    for record in run["history"]:
        record.pop("seconds")
    return run


def invoke(*argv: str, catch_exceptions: bool = False):
    """Run ``alrao ARGV...`` in-process, as the tests of every command do."""
    from typer.testing import CliRunner

    from alrao_cli.cli.app import app

    return CliRunner().invoke(app, list(argv), catch_exceptions=catch_exceptions)


def load_results(run_dir: Path) -> dict:
    """A run directory's ``results.json``, as plain data."""
    return json.loads((run_dir / "results.json").read_text())


def run_result(
    arch: str, losses: tuple[float, ...] = (), *, method: str = "alrao", lr: float | None = None, seed: int = 0,
    status: str = "ok", reason: str | None = None, acc: float | None = 0.5, seconds: float = 1.0,
    params: int | None = 100, posterior: tuple[float, ...] | None = None, copy_lrs: tuple[float, ...] | None = None,
    train_gap: float = 0.0, steps_per_epoch: int = 1,
):
    """A saved run whose validation loss per epoch is ``losses`` (train loss: ``loss + train_gap``)."""
    from alrao_cli.results.records import EpochRecord, RunResult, run_key

    history = tuple(
        EpochRecord(
            epoch=i, step=steps_per_epoch * i, train_loss=loss + train_gap, train_acc=None, val_loss=loss,
            val_acc=acc, seconds=float(i), posterior=posterior,
        )
        for i, loss in enumerate(losses, start=1)
    )
    key = run_key(arch, method, lr, seed) if lr is None else f"{arch}|{method}|lr={lr:g}|seed={seed}"
    return RunResult(
        key=key, arch=arch, method=method, lr=lr, seed=seed, status=status, reason=reason, params=params,
        seconds=seconds, history=history, copy_lrs=copy_lrs,
    )


def stop_at(step: int, key_part: str = "", stop=None):
    """An event listener that stops a study (Ctrl-C, or ``stop()``) right after the run whose
    key contains ``key_part`` checkpointed ``step``: use it with ``study.driver.listening``,
    or as ``train_run``'s ``on_progress``."""

    def listener(event) -> None:
        if getattr(event, "checkpointed", False) and event.step == step and key_part in event.key:
            (stop or _ctrl_c)()

    return listener


def _ctrl_c() -> None:
    raise KeyboardInterrupt


def main_in_a_fresh_process(argv: list[str], then: str = "") -> list[str]:
    """``alrao ARGV`` through the console entry point in a new Python: its output lines, then
    ``exit CODE TORCH_IMPORTED``, then what the statements ``then`` print."""
    script = (
        "import sys\n"
        "import alrao_cli, alrao_cli.cli.app\n"
        f"sys.argv = ['alrao', *{argv!r}]\n"
        "try:\n    alrao_cli.cli.app.main()\nexcept SystemExit as done:\n    code = done.code\n"
        "print('exit', code, 'torch' in sys.modules)\n"
        f"{then}\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()
