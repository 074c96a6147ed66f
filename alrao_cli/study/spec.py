"""What one run is, as plain data: the unit a plan lists and an executor schedules.

Everything here is frozen, picklable and free of torch and of the training code, so a
run can be planned, saved, shipped to another process or machine, and reported on
without importing either. Each method's options are a typed dataclass; options never
travel as ``dict``. Their defaults are the config schema's (:mod:`alrao_cli.config.schema`),
defined there once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, TypeVar

from alrao_cli.config.schema import DEFAULTS
from alrao_cli.data.spec import DataSpec

CHECKPOINT_SECONDS = 600.0  # default: also checkpoint when this long has passed since the last one


@dataclass(frozen=True, slots=True)
class Budget:
    """How long a run trains: a number of epochs, of steps, or of seconds (exactly one)."""

    epochs: int | None = None
    steps: int | None = None
    seconds: float | None = None


# -- method options -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MethodOptions:
    """The options of a method that takes none; the base of every method's options.

    A method's options are the study settings of the same names (``momentum``,
    ``lr_min``...): :meth:`from_settings` picks them out of the config, so a new option is
    one field here and one setting in the schema.
    """

    def to_dict(self) -> dict[str, Any]:
        """Plain data; an unset optional field (None) is left out, as older runs saved it."""
        return {name: value for name, value in asdict(self).items() if value is not None}

    @classmethod
    def from_settings(cls: type[_O], settings: Any, **given: Any) -> _O:
        """The options ``settings`` (a :class:`~alrao_cli.config.schema.StudyConfig`) holds, and ``given``."""
        values = {f.name: getattr(settings, f.name) for f in fields(cls) if hasattr(settings, f.name)}
        return cls(**{**values, **given})

    @classmethod
    def from_dict(cls: type[_O], data: dict[str, Any]) -> _O:
        known = {f.name for f in fields(cls)}
        return cls(**{name: value for name, value in data.items() if name in known})


_O = TypeVar("_O", bound=MethodOptions)


@dataclass(frozen=True, slots=True)
class SGDOptions(MethodOptions):
    """Plain SGD's: momentum and L2 weight decay, the same as Alrao's."""

    momentum: float = DEFAULTS.momentum
    weight_decay: float = DEFAULTS.weight_decay


@dataclass(frozen=True, slots=True)
class AdamOptions(MethodOptions):
    """Adam's (its rate is the run's ``lr``)."""

    weight_decay: float = DEFAULTS.weight_decay


@dataclass(frozen=True, slots=True)
class AlraoOptions(MethodOptions):
    """Alrao-SGD's: the interval features draw their rates from, the output copies, the switch."""

    lr_min: float = DEFAULTS.lr_min
    lr_max: float = DEFAULTS.lr_max
    copies: int = DEFAULTS.copies
    theta: float = DEFAULTS.theta
    momentum: float = DEFAULTS.momentum
    weight_decay: float = DEFAULTS.weight_decay
    head: str | None = None  # the output layer's qualified name; None: found by a probe batch


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """Which method, at which rate (single-rate methods), with which typed options."""

    name: str
    lr: float | None = None
    options: MethodOptions | None = None  # None: the method's defaults

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "lr": self.lr, "options": self.options.to_dict() if self.options else {}}


# -- runs -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RunSpec:
    """Everything one run needs, as plain data: the unit an executor schedules."""

    key: str  # unique inside its study: results.records.run_key
    arch: str  # canonical architecture string (sources.build_model accepts it)
    label: str  # the architecture as the user wrote it, for tables
    method: MethodSpec
    data: DataSpec
    budget: Budget
    batch_size: int
    seed: int
    device: str = "cpu"
    loader_workers: int = 0  # data-loader processes, for datasets that do not fit in memory
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    checkpoint_every: int | None = None  # steps; epochs always end with a checkpoint
    checkpoint_seconds: float | None = CHECKPOINT_SECONDS  # also checkpoint after this long; None: never by time

    _NOT_NUMBERS: ClassVar[tuple[str, ...]] = ("checkpoint_every", "checkpoint_seconds", "loader_workers")

    def to_dict(self) -> dict[str, Any]:
        plain = asdict(self)
        plain["method"] = self.method.to_dict()
        return plain

    def fingerprint(self) -> str:
        """A digest of what the run computes: a checkpoint of another spec must not be resumed.

        When to checkpoint and how many processes load the data do not change the
        numbers, so they are left out.
        """
        numbers = {k: v for k, v in self.to_dict().items() if k not in self._NOT_NUMBERS}
        text = json.dumps(numbers, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()


# -- what an executor reports while runs train --------------------------------------------
@dataclass(frozen=True, slots=True)
class RunStarted:
    """A worker began the run ``key``."""

    key: str


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a run stands, for progress displays."""

    key: str
    epoch: int
    step: int
    fraction: float  # of the budget done, in [0, 1]
    train_loss: float | None
    val_loss: float | None
    checkpointed: bool = False  # sent right after the run saved its checkpoint at ``step``


RunEvent = RunStarted | Progress
EventCallback = Callable[[RunEvent], None]
ProgressCallback = Callable[[Progress], None]
