"""Results as plain data: what every run produced, saved so that reports need no training.

Training builds :class:`RunResult` records; ranking and reporting read them back, so
``alrao report RUN_DIR`` redraws everything from ``results.json`` alone. The JSON is
strict (no ``NaN``/``Infinity`` tokens, which many readers reject): a non-finite float,
such as the loss of a diverged run, is written as ``null`` and read back as NaN where a
number is required, or as ``None`` where the field is optional.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

from alrao_cli.errors import AlraoUserError
from alrao_cli.util.files import write_text_atomic
from alrao_cli.util.strict_json import loads_strict

SCHEMA_VERSION = 1
RESULTS_JSON = "results.json"
RESULTS_CSV = "results.csv"
_NOT_A_RUN_HINT = "pass a folder written by `alrao screen` or `alrao compare`"
_CORRUPT_HINT = "it was not written by alrao or was edited by hand; rerun the study"

# "timed out": stopped past its --time-budget and grace (study.time_limit): a problem, never ranked
Status = Literal["ok", "diverged", "timed out", "failed"]
STATUSES: tuple[str, ...] = get_args(Status)

# Results written before runs saved their method's label: the built-in methods of then.
_BUILT_IN_BEFORE_LABELS = {"alrao": ("Alrao", False), "sgd": ("SGD", True), "adam": ("Adam", False)}

CSV_COLUMNS = (
    "key", "arch", "method", "lr", "seed", "status", "best_val_loss", "best_val_acc",
    "best_epoch", "lr_selected", "params", "seconds", "reason",
)


@dataclass(frozen=True, slots=True)
class EpochRecord:
    """Where a run stood at the end of one epoch."""

    epoch: int  # 1-based
    step: int  # optimizer steps done at the end of this epoch
    train_loss: float  # mean over the epoch (the mixture's loss for Alrao)
    train_acc: float | None
    val_loss: float  # Alrao: the mixture's -log p
    val_acc: float | None  # None for regression
    seconds: float  # wall time since the run started
    posterior: tuple[float, ...] | None = None  # Alrao: the switch posterior over the copies
    rates: dict[str, float] | None = None  # adaptive methods: the rate(s) they used at the epoch's end
    copy_val_losses: tuple[float, ...] | None = None  # Alrao: each output copy's own validation loss

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "step": self.step,
            "train_loss": _finite_or_none(self.train_loss),
            "train_acc": _finite_or_none(self.train_acc),
            "val_loss": _finite_or_none(self.val_loss),
            "val_acc": _finite_or_none(self.val_acc),
            "seconds": _finite_or_none(self.seconds),
            "posterior": _float_list(self.posterior),
            "rates": None if self.rates is None else {name: _finite_or_none(rate) for name, rate in self.rates.items()},
            "copy_val_losses": _float_list(self.copy_val_losses),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EpochRecord:
        return cls(
            epoch=_int(data, "epoch"),
            step=_int(data, "step"),
            train_loss=_float(data, "train_loss"),
            train_acc=_optional_float(data, "train_acc"),
            val_loss=_float(data, "val_loss"),
            val_acc=_optional_float(data, "val_acc"),
            seconds=_float(data, "seconds"),
            posterior=_optional_floats(data, "posterior"),
            rates=_optional_rates(data, "rates"),
            copy_val_losses=_optional_floats(data, "copy_val_losses"),
        )


@dataclass(frozen=True, slots=True)
class RunResult:
    """One architecture trained once with one method (and one rate, one seed)."""

    key: str  # unique inside its study, e.g. "cnn1d|sgd|lr=0.1|seed=0"
    arch: str  # as the user wrote it (or the expanded "file.py:Name")
    method: str  # "alrao", "sgd", "adam", or any registered method name
    lr: float | None  # the rate of single-rate methods; None for Alrao
    seed: int
    status: Status
    reason: str | None  # one line, for "failed" and "diverged"
    params: int | None
    seconds: float
    history: tuple[EpochRecord, ...] = ()
    copy_lrs: tuple[float, ...] | None = None  # Alrao: the output copies' rates
    rate_summary: dict[str, Any] | None = None  # Alrao: the sampled per-feature rates (JSON-able)
    # What another method says about itself after training (JSON-able): MLR-SNet's rate
    # trajectory, reversible-HD's tuned schedule, an adaptive method's settled rate.
    explanation: dict[str, Any] | None = None
    spec: dict[str, Any] = field(default_factory=dict)  # the run's spec, to reproduce it
    # How the method describes itself, saved so that a report needs no method registry:
    method_label: str = ""  # "SGD"; "" reads as the method's name
    tuned_over_grid: bool | None = None  # run at every rate of a grid, its best rate kept
    training_runs: int = 1  # runs of the architecture this result cost (reversible-hd: meta_iters + 1)

    def __post_init__(self) -> None:
        """Results written before runs described their method get the built-in methods' words."""
        label, tuned = _BUILT_IN_BEFORE_LABELS.get(self.method, (self.method, False))
        if not self.method_label:
            object.__setattr__(self, "method_label", label)
        if self.tuned_over_grid is None:
            object.__setattr__(self, "tuned_over_grid", tuned)
        if self.training_runs < 1:
            raise ValueError(f"training_runs: a result costs at least one run, not {self.training_runs}")

    @property
    def best(self) -> EpochRecord | None:
        """The epoch with the lowest finite validation loss (the earliest on a tie)."""
        finite = [record for record in self.history if math.isfinite(record.val_loss)]
        return min(finite, key=lambda record: record.val_loss) if finite else None

    @property
    def best_val_loss(self) -> float | None:
        best = self.best
        return best.val_loss if best is not None else None

    @property
    def best_val_acc(self) -> float | None:
        best = self.best
        return best.val_acc if best is not None else None

    @property
    def best_epoch(self) -> int | None:
        best = self.best
        return best.epoch if best is not None else None

    @property
    def final_posterior(self) -> tuple[float, ...] | None:
        return self.history[-1].posterior if self.history else None

    @property
    def lr_selected(self) -> float | None:
        """Alrao: the rate of the copy the switch favours at the end; None otherwise."""
        posterior, rates = self.final_posterior, self.copy_lrs
        if posterior is None or rates is None or len(posterior) != len(rates) or not rates:
            return None
        weights = [weight if math.isfinite(weight) else -math.inf for weight in posterior]
        favourite = max(range(len(weights)), key=weights.__getitem__)
        return rates[favourite]

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "arch": self.arch,
            "method": self.method,
            "lr": _finite_or_none(self.lr),
            "seed": self.seed,
            "status": self.status,
            "reason": self.reason,
            "params": self.params,
            "seconds": _finite_or_none(self.seconds),
            "history": [record.to_dict() for record in self.history],
            "copy_lrs": _float_list(self.copy_lrs),
            "rate_summary": json_safe(self.rate_summary),
            "explanation": json_safe(self.explanation),
            "spec": json_safe(self.spec),
            "method_label": self.method_label,
            "tuned_over_grid": self.tuned_over_grid,
            "training_runs": self.training_runs,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        status = _str(data, "status")
        if status not in STATUSES:
            raise ValueError(f"status: {status!r} is not one of {', '.join(STATUSES)}")
        history = data.get("history") or []
        if not isinstance(history, list):
            raise TypeError("history: expected a list")
        lr = _optional_float(data, "lr")
        method = _str(data, "method")
        training_runs = _optional_int(data, "training_runs")  # None: saved before results counted it
        return cls(
            key=_key_with_rate(_str(data, "key"), lr),
            arch=_str(data, "arch"),
            method=method,
            lr=lr,
            seed=_int(data, "seed"),
            status=status,
            reason=_optional_str(data, "reason"),
            params=_optional_int(data, "params"),
            seconds=_float(data, "seconds"),
            history=tuple(EpochRecord.from_dict(_mapping(record, "history")) for record in history),
            copy_lrs=_optional_floats(data, "copy_lrs"),
            rate_summary=_optional_mapping(data, "rate_summary"),
            explanation=_optional_mapping(data, "explanation"),
            spec=_optional_mapping(data, "spec") or {},
            method_label=_optional_str(data, "method_label") or "",
            tuned_over_grid=data.get("tuned_over_grid") if isinstance(data.get("tuned_over_grid"), bool) else None,
            training_runs=1 if training_runs is None else training_runs,
        )


@dataclass(frozen=True, slots=True)
class StudyResult:
    """Every run of one ``alrao screen`` or ``alrao compare`` invocation."""

    kind: str  # "screen" | "compare"
    config: dict[str, Any]  # the resolved config as plain data
    runs: tuple[RunResult, ...]
    started: str  # ISO time
    finished: str | None = None
    interrupted: bool = False
    schema_version: int = SCHEMA_VERSION

    def with_run(self, run: RunResult) -> StudyResult:
        """This study with ``run`` added, replacing an earlier run of the same key in place."""
        keys = [existing.key for existing in self.runs]
        if run.key in keys:
            runs = list(self.runs)
            runs[keys.index(run.key)] = run
            return replace(self, runs=tuple(runs))
        return replace(self, runs=(*self.runs, run))

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "kind": self.kind,
            "started": self.started,
            "finished": self.finished,
            "interrupted": self.interrupted,
            "config": json_safe(self.config),
            "runs": [run.to_dict() for run in self.runs],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudyResult:
        runs = data.get("runs")
        if not isinstance(runs, list):
            raise TypeError("runs: expected a list")
        interrupted = data.get("interrupted", False)
        if not isinstance(interrupted, bool):
            raise TypeError("interrupted: expected true or false")
        return cls(
            kind=_str(data, "kind"),
            config=_optional_mapping(data, "config") or {},
            runs=tuple(RunResult.from_dict(_mapping(run, "runs")) for run in runs),
            started=_str(data, "started"),
            finished=_optional_str(data, "finished"),
            interrupted=interrupted,
            schema_version=_int(data, "schema_version"),
        )


def json_safe(value: Any) -> Any:
    """``value`` as strict JSON data: non-finite floats become None, tuples and paths plain."""
    if isinstance(value, float):
        return _finite_or_none(value)
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value


def write_json_atomic(path: Path, data: Any, *, run_dir: Path | None = None) -> None:
    """Write ``data`` as strict JSON (non-finite floats as null), atomically (:mod:`alrao_cli.util.files`)."""
    write_text_atomic(path, json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n", run_dir=run_dir)


def save_study(run_dir: Path, study: StudyResult) -> None:
    """Write ``results.json`` (everything) and ``results.csv`` (one row per run).

    Neither is written through a link, and a failed write (a full disk) is one
    :class:`~alrao_cli.util.files.RunDirectoryError` line: the file keeps what it held.
    """
    write_json_atomic(run_dir / RESULTS_JSON, study.to_dict(), run_dir=run_dir)
    write_text_atomic(run_dir / RESULTS_CSV, runs_csv(study.runs), run_dir=run_dir)


def runs_csv(runs: Iterable[RunResult]) -> str:
    """One row per run, for spreadsheets: the headline numbers, not the histories."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for run in runs:
        row = (
            run.key, run.arch, run.method, run.lr, run.seed, run.status, run.best_val_loss,
            run.best_val_acc, run.best_epoch, run.lr_selected, run.params, run.seconds, run.reason,
        )
        writer.writerow(["" if value is None else value for value in row])
    return buffer.getvalue()


def load_study(run_dir: Path) -> StudyResult:
    """Read a run directory's ``results.json`` back, or say exactly why it cannot be read."""
    if not run_dir.exists():
        raise AlraoUserError(f"{run_dir}: no such run directory", hint=_NOT_A_RUN_HINT)
    if not run_dir.is_dir():
        raise AlraoUserError(f"{run_dir}: not a directory", hint=_NOT_A_RUN_HINT)
    path = run_dir / RESULTS_JSON
    if not path.is_file():
        raise AlraoUserError(
            f"{run_dir}: not a run directory (no {RESULTS_JSON} in it)", hint=_NOT_A_RUN_HINT
        )
    try:
        data = loads_strict(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise AlraoUserError(f"cannot read {path}: {error.strerror or error}") from None
    except ValueError as error:  # not UTF-8, not JSON, a key given twice, nested past any real file
        raise AlraoUserError(f"{path} is corrupt: {error}", hint=_CORRUPT_HINT) from None
    if not isinstance(data, dict) or "schema_version" not in data or "runs" not in data:
        raise AlraoUserError(f"{path} is not an alrao results file", hint=_NOT_A_RUN_HINT)
    version = data["schema_version"]
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise AlraoUserError(
            f"{path} was written by a newer alrao (results schema {version}; "
            f"this one reads up to {SCHEMA_VERSION})",
            hint="upgrade alrao to read it",
        )
    try:
        return StudyResult.from_dict(data)
    except (KeyError, TypeError, ValueError) as error:
        raise AlraoUserError(f"{path} is corrupt: {_describe(error)}", hint=_CORRUPT_HINT) from None


def run_key(label: str, method: str, lr: float | None, seed: int) -> str:
    """A run's key, unique in its study: ``mlp|alrao|seed=0``, ``mlp|sgd|lr=0.01|seed=0``.

    Every run with a rate has it in its key; :func:`_key_with_rate` reads keys written
    before that was so.
    """
    rate = f"|lr={lr:.12g}" if lr is not None else ""
    return f"{label}|{method}{rate}|seed={seed}"


def _key_with_rate(key: str, lr: float | None) -> str:
    """A run's key with its rate, as :func:`run_key` writes them: ``mlp|adam|lr=0.001|seed=0``.

    Keys written before every single-rate method carried its rate (``mlp|adam|seed=0``) are
    read in that form, so that a run directory from then resumes without training again.
    """
    if lr is None or "|lr=" in key or "|seed=" not in key:
        return key
    head, seed = key.rsplit("|seed=", 1)
    label, method = head.rsplit("|", 1)
    return run_key(label, method, lr, int(seed)) if seed.isdigit() else key


def _describe(error: Exception) -> str:
    if isinstance(error, KeyError):
        return f"missing field {error.args[0]!r}"
    return str(error)


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _float_list(values: tuple[float, ...] | None) -> list[float | None] | None:
    return None if values is None else [_finite_or_none(value) for value in values]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _float(data: dict[str, Any], name: str) -> float:
    """A required number: null stands for a non-finite value, read back as NaN."""
    value = data[name]
    if value is None:
        return math.nan
    if not _is_number(value):
        raise ValueError(f"{name}: expected a number, got {value!r}")
    return float(value)


def _optional_float(data: dict[str, Any], name: str) -> float | None:
    value = data.get(name)
    return None if value is None else _float(data, name)


def _optional_floats(data: dict[str, Any], name: str) -> tuple[float, ...] | None:
    values = data.get(name)
    if values is None:
        return None
    if not isinstance(values, list):
        raise TypeError(f"{name}: expected a list of numbers")
    return tuple(_float({name: value}, name) for value in values)


def _int(data: dict[str, Any], name: str) -> int:
    value = data[name]
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name}: expected an integer, got {value!r}")
    return value


def _optional_int(data: dict[str, Any], name: str) -> int | None:
    return None if data.get(name) is None else _int(data, name)


def _str(data: dict[str, Any], name: str) -> str:
    value = data[name]
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected a string, got {value!r}")
    return value


def _optional_str(data: dict[str, Any], name: str) -> str | None:
    return None if data.get(name) is None else _str(data, name)


def _mapping(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"{name}: expected objects, got {value!r}")
    return value


def _optional_rates(data: dict[str, Any], name: str) -> dict[str, float] | None:
    """A record's rates: names to numbers (null read as nan: a rate that was not finite)."""
    rates = _optional_mapping(data, name)
    if rates is None:
        return None
    if not all(isinstance(key, str) and (value is None or _is_number(value)) for key, value in rates.items()):
        raise TypeError(f"{name}: expected a mapping of names to numbers")
    return {key: math.nan if value is None else float(value) for key, value in rates.items()}


def _optional_mapping(data: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = data.get(name)
    return None if value is None else _mapping(value, name)
