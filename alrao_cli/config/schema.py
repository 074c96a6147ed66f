"""The options of a study, from defaults, a YAML file and flags, checked once.

Every option has one home, :class:`StudyConfig`; the command line and the YAML file
are two ways to fill it. Precedence is defaults < file < flags. Values are checked
here, key by key, before anything trains, so that a typo costs one red line naming the
flag or config key at fault rather than a traceback an hour into a screen.
"""

from __future__ import annotations

import copy
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal


from alrao_cli.errors import AlraoUserError
from alrao_cli.util.suggest import did_you_mean

DEFAULT_GRID: tuple[float, ...] = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
"""The paper's decade grid of SGD rates, 1e-5 to 10."""

DEFAULT_EPOCHS: int = 10
"""Epochs per architecture when no budget (epochs, steps or time_budget) is given."""

# A compare measures its method against SGD at its best --grid rate (this baseline, which it
# must run) and, unless --no-adam, beside Adam: its baselines when none are named.
COMPARE_REFERENCE = "sgd-grid"
COMPARE_BASELINES: tuple[str, ...] = (COMPARE_REFERENCE, "adam")


MAX_SEEDS = 1000  # --seeds: more is a slip, not a study
MAX_GRID = 1000  # rates of LOW:HIGH:COUNT: each is one run per architecture and seed


def _plain_value(value: Any) -> bool:
    """Whether a model argument is plain data that survives YAML, JSON and pickling alike."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain_value(item) for item in value)
    if isinstance(value, Mapping):
        return all(isinstance(key, str) and _plain_value(item) for key, item in value.items())
    return False


_GRID_HINT = "write rates as 1e-5,1e-3,0.1 or as LOW:HIGH:COUNT log-spaced points, e.g. 1e-5:10:7"


@dataclass(frozen=True, slots=True)
class StudyConfig:
    """Everything a ``screen`` or ``compare`` needs. Build it with :func:`build_config` to check it."""

    archs: tuple[str, ...] = ()
    data: str = "mnist1d"
    data_dir: str | None = None
    download: bool = False
    subset: int | None = None
    val_fraction: float = 0.1
    augment: bool = False
    epochs: int | None = None
    steps: int | None = None
    time_budget: float | None = None
    batch_size: int = 32
    lr_min: float = 1e-5
    lr_max: float = 10.0
    copies: int = 10
    theta: float = 0.999
    momentum: float = 0.0
    weight_decay: float = 0.0
    seed: int = 0
    seeds: int = 1
    device: str = "auto"
    loader_workers: int = 0
    out: str | None = None
    workdir: str | None = None  # where relative paths are read from; None: the current folder
    method: tuple[str, ...] = ("alrao",)
    baselines: tuple[str, ...] = ()
    grid: tuple[float, ...] = DEFAULT_GRID
    adam: bool = True
    schedule_net: str | None = None  # mlrsnet: a saved, meta-trained net that drives SGD frozen
    meta_arch: str | None = None  # mlrsnet-transfer: the architecture it meta-trains on; None: the first
    meta_iters: int = 5  # reversible-hd: rounds of hypergradient steps on the schedule
    plots: bool = True
    fail_fast: bool = False
    checkpoint_every: int | None = None
    model_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    heads: dict[str, str] = field(default_factory=dict)

    @property
    def budget_epochs(self) -> int | None:
        """Epochs per run when the budget is counted in epochs, None when steps or time is.

        ``epochs`` stays None in the config when the user gave no budget, so that a
        saved config still says "no budget given" and a later ``--steps`` can replace it.
        """
        if self.steps is not None or self.time_budget is not None:
            return None
        return DEFAULT_EPOCHS if self.epochs is None else self.epochs


DEFAULTS = StudyConfig()


@dataclass(frozen=True, slots=True)
class ExecutionConfig:
    """Where the runs of a study execute: how many at once, on which machines, with what.

    None of it changes what a run computes (each run's numbers depend on its own spec and
    seed), so it is not part of :class:`StudyConfig` and is not saved with the study: a
    study's files are the same whichever way it ran, and ``--resume`` takes these afresh
    from its own flags (a study begun one run at a time may go on with workers, or the
    other way round). Build it with :func:`build_execution` to check it.

    The one caveat is ``threads_per_run``: torch splits a CPU operation's sums between
    threads, so runs are bit-identical only at the same number of threads per run.
    """

    workers: int | None = None  # runs at once; None: 1 on this machine, as many as fit on a Ray cluster
    threads_per_run: int | None = None  # torch threads per run; None: cores // workers on Ray, torch's own in-process
    ray_address: str | None = None  # an existing Ray cluster to join; None: a local Ray for the command
    cpus_per_run: float | None = None  # CPUs Ray reserves per run; None: threads_per_run
    gpus_per_run: float = 0.0  # GPUs Ray reserves per run; a fraction packs several runs on one GPU
    retries: int = 2  # times a run whose worker process died is tried again, from its last checkpoint
    isolate: bool = False  # each run (and each architecture's preflight or check) in a child process of its own
    time_grace: float | None = None  # seconds a run may go on past its time budget; None: study.time_limit's default

    @property
    def uses_ray(self) -> bool:
        """Runs go to Ray with several workers, a cluster, or resources asked per run."""
        return (
            (self.workers or 1) > 1 or self.ray_address is not None
            or self.cpus_per_run is not None or self.gpus_per_run > 0
        )

    @property
    def asked_for_ray(self) -> str:
        """The flag that asked for Ray, as the user gave it: for messages."""
        if (self.workers or 1) > 1:
            return f"--workers {self.workers}"
        if self.ray_address is not None:
            return f"--ray-address {self.ray_address}"
        if self.gpus_per_run > 0:
            return f"--gpus-per-run {self.gpus_per_run:g}"
        return f"--cpus-per-run {self.cpus_per_run:g}" if self.cpus_per_run is not None else "--workers 1"


EXECUTION_DEFAULTS = ExecutionConfig()

_Source = Literal["file", "flags"]
_Coercer = Callable[[Any, str], Any]
"""Turns a raw value into the typed one, or raises AlraoUserError naming ``where`` it came from."""


@dataclass(frozen=True, slots=True)
class _Setting:
    value: Any
    where: str


# Other spellings of an option; "workers" is the data-loader option's name in run
# directories written before --workers meant parallel runs.
_ALIASES = {
    "arch": "archs", "architectures": "archs", "baseline": "baselines", "workers": "loader_workers",
    "methods": "method",
}
_FLAGS = {"archs": "the ARCH arguments", "baselines": "--baseline", "model_kwargs": "model_kwargs", "method": "--method"}
_BUDGET_NAMES = ("epochs", "steps", "time_budget")
_DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return f"{value!r} ({type(value).__name__})"


def _type_error(where: str, expected: str, value: Any, example: str) -> AlraoUserError:
    """An empty YAML value (``key:``) reads as null: say how to get the default back."""
    hint = "give a value, or remove the key to keep the default" if value is None else f"for example: {example}"
    return AlraoUserError(f"{where} must be {expected}, got {_describe(value)}", hint=hint)


def _optional(coerce: _Coercer) -> _Coercer:
    """None (YAML ``null``) means "not set" for options whose default is None."""

    def coerce_optional(value: Any, where: str) -> Any:
        return None if value is None else coerce(value, where)

    return coerce_optional


def _boolean(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise _type_error(where, "true or false", value, "true")
    return value


def _text(value: Any, where: str) -> str:
    """Paths may come as :class:`os.PathLike` from Python callers; they are kept as text."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip():
        raise _type_error(where, "non-empty text", value, "'text in quotes'")
    return value


def _integer(minimum: int, example: str, maximum: int | None = None) -> _Coercer:
    """Booleans are refused although Python counts them as ints: ``copies: true`` is a slip.

    ``maximum`` bounds what would only be a mistake (a 70-digit seed, a million seeds) before
    it costs minutes or a traceback deep in numpy.
    """

    def coerce_integer(value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(where, "an integer", value, example)
        if value < minimum:
            raise AlraoUserError(f"{where} must be at least {minimum}, got {value}", hint=f"for example: {example}")
        if maximum is not None and value > maximum:
            raise AlraoUserError(f"{where} must be at most {maximum}, got {value}", hint=f"for example: {example}")
        return value

    return coerce_integer


def _as_float(value: Any, where: str, example: str = "1e-3") -> float:
    """Ints and numeric text are numbers too: YAML 1.1 reads ``1e-3`` (no dot) as a string."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _type_error(where, "a number", value, example)
    try:
        number = float(value)
    except ValueError:
        raise _type_error(where, "a number", value, example) from None
    if not math.isfinite(number):
        raise AlraoUserError(f"{where} must be a finite number, got {value!r}", hint=f"for example: {example}")
    return number


def _number(check: Callable[[float], bool], requirement: str, example: str) -> _Coercer:
    def coerce_number(value: Any, where: str) -> float:
        number = _as_float(value, where, example)
        if not check(number):
            raise AlraoUserError(f"{where} must be {requirement}, got {number:g}", hint=f"for example: {example}")
        return number

    return coerce_number


def _names(value: Any, where: str, expected: str, example: str) -> list[str]:
    """A single string or a list of strings, as a list; a blank entry is refused."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(item, str) for item in items):
        raise _type_error(where, expected, value, example)
    if any(not item.strip() for item in items):
        raise AlraoUserError(f"{where} has an empty entry: {value!r}", hint=f"for example: {example}")
    return [item.strip() for item in items]


def _architectures(value: Any, where: str) -> tuple[str, ...]:
    names = _names(value, where, "an architecture or a list of them", "[mlp, cnn1d, my_models.py:Net]")
    return tuple(dict.fromkeys(names))


def _baselines(value: Any, where: str) -> tuple[str, ...]:
    """Commas split entries everywhere, so ``--baseline sgd-grid,adam`` works too.

    The config knows no methods: :func:`~alrao_cli.study.plan.plan_study` checks the names.
    """
    entries = _names(value, where, "a baseline or a list of them", "[sgd-grid, adam]")
    names = [part.strip() for entry in entries for part in entry.split(",") if part.strip()]
    return tuple(dict.fromkeys(names))  # which names exist is the methods registry's to say, when planning


def _methods(value: Any, where: str) -> tuple[str, ...]:
    """The screened method(s): ``alrao``, or a portfolio ``alrao,adam``; checked when planning."""
    entries = _names(value, where, "a method or a list of them", "[alrao, adam]")
    names = tuple(dict.fromkeys(part.strip() for entry in entries for part in entry.split(",") if part.strip()))
    if not names:
        raise AlraoUserError(f"{where} names no method", hint="for example: alrao, or alrao,adam")
    return names


def _device(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _DEVICE_PATTERN.fullmatch(value):
        raise AlraoUserError(
            f"{where} must be a device name, got {_describe(value)}",
            hint="use auto, cpu, cuda, cuda:N (e.g. cuda:1) or mps",
        )
    return value


def _grid(value: Any, where: str) -> tuple[float, ...]:
    if isinstance(value, str):
        return parse_grid(value, where)
    if not isinstance(value, (list, tuple)):
        raise _type_error(where, "a list of learning rates or a grid text", value, "[1e-4, 1e-3, 1e-2] or 1e-5:10:7")
    return _checked_grid([_as_float(item, f"{where} entry {index + 1}") for index, item in enumerate(value)], where)


def _heads(value: Any, where: str) -> dict[str, str]:
    """Checked to be ``{arch: qualified name of its output layer}`` (``"*"``: every ARCH)."""
    example = "{my_models.py:Net: classifier.3}"
    if not isinstance(value, Mapping):
        raise _type_error(where, "a mapping of architecture to output-layer name", value, example)
    for arch, name in value.items():
        if not isinstance(arch, str) or not isinstance(name, str) or not name:
            raise _type_error(f"{where} entry {arch!r}", "a layer name as text", name, example)
    return dict(value)


def _model_kwargs(value: Any, where: str) -> dict[str, dict[str, Any]]:
    """Checked to be ``{arch: {name: value}}`` with names a constructor could accept."""
    example = "{mlp: {width: 256, depth: 2}}"
    if not isinstance(value, Mapping):
        raise _type_error(where, "a mapping of architecture to keyword arguments", value, example)
    checked: dict[str, dict[str, Any]] = {}
    for arch, kwargs in value.items():
        if not isinstance(arch, str):
            raise _type_error(f"{where} key {arch!r}", "an architecture as text", arch, example)
        if not isinstance(kwargs, Mapping):
            raise AlraoUserError(
                f"{where} entry {arch!r} must be a mapping of keyword arguments, got {_describe(kwargs)}",
                hint=f"for example: {example}",
            )
        for name in kwargs:
            if not (isinstance(name, str) and name.isidentifier()):
                raise AlraoUserError(
                    f"{where} entry {arch!r}: {name!r} is not a keyword argument name",
                    hint="use the constructor's parameter names, e.g. width or hidden_size",
                )
            if not _plain_value(kwargs[name]):
                raise AlraoUserError(
                    f"{where} entry {arch!r}: {name} is {_describe(kwargs[name])}, not a number, text, true/false or a list",
                    hint="model arguments are plain YAML values (a date or !!binary is not one)",
                )
        checked[arch] = copy.deepcopy(dict(kwargs))
    return checked


_COERCERS: dict[str, _Coercer] = {
    "archs": _architectures,
    "data": _text,
    "data_dir": _optional(_text),
    "download": _boolean,
    "subset": _optional(_integer(1, "1000")),
    "val_fraction": _number(lambda fraction: 0 < fraction < 1, "strictly between 0 and 1", "0.2"),
    "augment": _boolean,
    "epochs": _optional(_integer(1, str(DEFAULT_EPOCHS))),
    "steps": _optional(_integer(1, "1000")),
    "time_budget": _optional(_number(lambda seconds: seconds > 0, "positive (seconds)", "300")),
    "batch_size": _integer(1, "32"),
    "lr_min": _number(lambda rate: rate > 0, "positive", "1e-5"),
    "lr_max": _number(lambda rate: rate > 0, "positive", "10"),
    "copies": _integer(1, "10"),
    "theta": _number(lambda theta: 0 <= theta <= 1, "between 0 and 1", "0.999"),
    "momentum": _number(lambda momentum: 0 <= momentum < 1, "at least 0 and below 1", "0.9"),
    "weight_decay": _number(lambda decay: decay >= 0, "zero or positive", "5e-4"),
    "seed": _integer(0, "0", maximum=2**63 - 1 - MAX_SEEDS),  # torch seeds are 64-bit
    "seeds": _integer(1, "3", maximum=MAX_SEEDS),
    "device": _device,
    "loader_workers": _integer(0, "2"),
    "out": _optional(_text),
    "workdir": _optional(_text),
    "method": _methods,
    "baselines": _baselines,
    "grid": _grid,
    "adam": _boolean,
    "schedule_net": _optional(_text),
    "meta_arch": _optional(_text),
    "meta_iters": _integer(0, "5", maximum=1000),
    "plots": _boolean,
    "fail_fast": _boolean,
    "checkpoint_every": _optional(_integer(1, "500")),
    "model_kwargs": _model_kwargs,
    "heads": _heads,
}


_EXECUTION_COERCERS: dict[str, _Coercer] = {
    "workers": _optional(_integer(1, "2")),
    "threads_per_run": _optional(_integer(1, "1")),
    "ray_address": _optional(_text),
    "cpus_per_run": _optional(_number(lambda cpus: cpus > 0, "positive", "2")),
    "gpus_per_run": _number(lambda gpus: gpus >= 0, "zero or positive", "0.25"),
    "retries": _integer(0, "2"),
    "isolate": _boolean,
    "time_grace": _optional(_number(lambda seconds: seconds >= 0, "zero or positive", "5")),
}


def build_execution(flags: Mapping[str, Any]) -> ExecutionConfig:
    """A checked :class:`ExecutionConfig` from the flags given (None: not given, the default)."""
    values: dict[str, Any] = {}
    for name, value in flags.items():
        if name not in _EXECUTION_COERCERS:
            raise AlraoUserError(f"unknown execution option {name!r}", hint=did_you_mean(name, _EXECUTION_COERCERS))
        if value is not None:
            values[name] = _EXECUTION_COERCERS[name](value, "--" + name.replace("_", "-"))
    return ExecutionConfig(**values)


def parse_grid(text: str, where: str = "--grid") -> tuple[float, ...]:
    """SGD rates from ``1e-5,1e-4,0.1`` or ``LOW:HIGH:COUNT`` (log-spaced, both ends included)."""
    text = text.strip()
    if not text:
        raise AlraoUserError(f"{where} is empty", hint=_GRID_HINT)
    if ":" in text:
        return _log_spaced(text, where)
    entries = [entry.strip() for entry in text.split(",")]
    if "" in entries:
        raise AlraoUserError(f"{where} has an empty entry in {text!r}", hint=_GRID_HINT)
    return _checked_grid([_grid_number(entry, text, where) for entry in entries], where)


def _grid_number(entry: str, text: str, where: str) -> float:
    try:
        number = float(entry)
    except ValueError:
        raise AlraoUserError(f"{where}: {entry!r} in {text!r} is not a number", hint=_GRID_HINT) from None
    return number


def _log_spaced(text: str, where: str) -> tuple[float, ...]:
    """Rounded to 12 digits so that 1e-4:1:5 gives 0.001, not 0.0010000000000000002, in tables."""
    parts = [part.strip() for part in text.split(":")]
    if len(parts) != 3:
        raise AlraoUserError(f"{where}: {text!r} is not LOW:HIGH:COUNT", hint=_GRID_HINT)
    low, high = (_grid_number(part, text, where) for part in parts[:2])
    if not parts[2].isdigit() or int(parts[2]) < 2:
        raise AlraoUserError(
            f"{where}: the COUNT of {text!r} must be a whole number of at least 2, got {parts[2]!r}", hint=_GRID_HINT
        )
    if not (0 < low < high and math.isfinite(high)):
        raise AlraoUserError(f"{where}: {text!r} needs 0 < LOW < HIGH", hint=_GRID_HINT)
    count = int(parts[2])
    if count > MAX_GRID:
        raise AlraoUserError(f"{where}: {text!r} asks for {count} rates, at most {MAX_GRID}", hint=_GRID_HINT)
    start, stop = math.log10(low), math.log10(high)
    inner = [float(f"{10 ** (start + (stop - start) * i / (count - 1)):.12g}") for i in range(1, count - 1)]
    return _checked_grid([low, *inner, high], where)


def _checked_grid(rates: list[float], where: str) -> tuple[float, ...]:
    if not rates:
        raise AlraoUserError(f"{where} is empty", hint=_GRID_HINT)
    for rate in rates:
        if not (math.isfinite(rate) and rate > 0):
            raise AlraoUserError(f"{where}: every rate must be positive and finite, got {rate:g}", hint=_GRID_HINT)
    repeated = sorted({rate for rate in rates if rates.count(rate) > 1})
    if repeated:
        raise AlraoUserError(f"{where} lists {repeated[0]:g} twice", hint="each rate trains once; drop the repeat")
    return tuple(rates)


def build_config(file_values: Mapping[str, Any] | None, overrides: Mapping[str, Any]) -> StudyConfig:
    """Merge defaults < file < flags into a checked :class:`StudyConfig`.

    ``overrides`` holds only the flags the user gave. The budget is one choice made
    three ways, so a budget flag (``--steps``) replaces the file's budget (``epochs:``)
    instead of clashing with it; two budgets from the same place are an error.
    """
    from_file = _settings(file_values or {}, "file")
    from_flags = _settings(overrides, "flags")
    if _given_budgets(from_flags):
        from_file = {name: setting for name, setting in from_file.items() if name not in _BUDGET_NAMES}
    for settings in (from_file, from_flags):
        budgets = _given_budgets(settings)
        if len(budgets) > 1:
            raise AlraoUserError(
                f"{budgets[0].where} and {budgets[1].where} both set the budget",
                hint="give only one of epochs, steps or time_budget",
            )
    merged = {**from_file, **from_flags}
    _check_rate_range(merged)
    return StudyConfig(**{name: setting.value for name, setting in merged.items()})


def _settings(raw: Mapping[Any, Any], source: _Source) -> dict[str, _Setting]:
    settings: dict[str, _Setting] = {}
    for key, value in raw.items():
        name = _option_name(key, source)
        where = f"config key {key!r}" if source == "file" else _FLAGS.get(name, "--" + name.replace("_", "-"))
        if name in settings:
            raise AlraoUserError(f"{settings[name].where} and {where} both set {name}", hint="keep only one of them")
        settings[name] = _Setting(_COERCERS[name](value, where), where)
    return settings


def _option_name(key: Any, source: _Source) -> str:
    """The field a key names: ``lr-min`` and ``lr_min`` are one option, ``arch`` means archs."""
    what = "config key" if source == "file" else "option"
    if not isinstance(key, str):
        raise AlraoUserError(f"{what} {key!r} is not an option name", hint="option names are text, like lr_min")
    name = key.strip().replace("-", "_")
    name = _ALIASES.get(name, name)
    if name not in _COERCERS:
        raise AlraoUserError(
            f"unknown {what} {key!r}",
            hint=did_you_mean(name.lower(), _COERCERS, _ALIASES) + "`alrao init` writes every option with a comment",
        )
    return name


def _given_budgets(settings: dict[str, _Setting]) -> list[_Setting]:
    return [settings[name] for name in _BUDGET_NAMES if name in settings and settings[name].value is not None]


def _check_rate_range(merged: dict[str, _Setting]) -> None:
    low, high = (
        merged.get(name, _Setting(getattr(DEFAULTS, name), f"the default {name}")) for name in ("lr_min", "lr_max")
    )
    if low.value >= high.value:
        raise AlraoUserError(
            f"{low.where} ({low.value:g}) must be below {high.where} ({high.value:g})",
            hint="Alrao draws rates between lr_min and lr_max, e.g. 1e-5 and 10",
        )


def config_to_dict(config: StudyConfig) -> dict[str, Any]:
    """Plain lists, dicts and scalars, ready for YAML or JSON."""
    return {option.name: _plain(getattr(config, option.name)) for option in fields(config)}


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    return value


def model_settings(
    model_kwargs: Mapping[str, Mapping[str, Any]], heads: Mapping[str, str], arch: str, model: str
) -> tuple[str, dict[str, Any], str | None]:
    """One model's ``model_kwargs`` (with the key they are under) and its ``heads`` entry.

    Both options are keyed by the ARCH as written, else by the model it expands to
    (``file.py:Name``); ``heads`` also by ``"*"`` for every ARCH. Screens, compares and
    checks read them through this one rule.
    """
    key = arch if arch in model_kwargs else model
    head = heads.get(arch) or heads.get(model) or heads.get("*")
    return key, dict(model_kwargs.get(key, {})), head


NULL_MEANS: dict[str, str] = {
    "data_dir": "alrao's data cache (docs/data.md)",
    "subset": "all",
    "epochs": f"{DEFAULT_EPOCHS}, unless a steps or time budget is given",
    "schedule_net": "meta-train one per architecture",
    "meta_arch": "the first",
    "out": "runs/<timestamp>-<command>",
    "workdir": "the current folder",
    "checkpoint_every": "at epoch ends and every 10 minutes",
    "workers": "1, one after the other in this process; with --ray-address, as many as the cluster's "
    "resources fit",
    "threads_per_run": "on Ray, this machine's cores divided by --workers; in this process, torch's own",
    "cpus_per_run": "--threads-per-run",
    "time_grace": "the longer of 30 s and half the budget",
}
"""What an option left at None (YAML's null) stands for: the ``null = ...`` of its comment in
``alrao init``'s file and the ``[default: ...]`` of its flag's ``--help``."""


_SECTIONS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("What to train", (
        ("archs", "zoo names (see alrao models), file.py, file.py:Name or torchvision:NAME; [] = the whole zoo"),
        ("data", "mnist1d (built in), cifar10, cifar100, mnist, fashion-mnist, svhn, imagefolder:PATH, python:FILE.py:FACTORY"),
        ("data_dir", "folder holding torchvision datasets"),
        ("download", "download a missing torchvision dataset (needs a network)"),
        ("subset", "keep at most this many training examples, for quick runs"),
        ("val_fraction", "share of the training split held out for validation (the test split is never used)"),
        ("augment", "light augmentation for images (random crop + flip)"),
        ("loader_workers", "data-loader worker processes per run; 0 = load in the training process"),
    )),
    ("Budget per run: give at most one of epochs, steps, time_budget", (
        ("epochs", "epochs per run"),
        ("steps", "optimizer steps per run, instead of epochs"),
        ("time_budget", "seconds per run, instead of epochs"),
        ("batch_size", "minibatch size (the default is the paper's)"),
    )),
    ("Alrao", (
        ("lr_min", "smallest learning rate a feature may draw (log-uniform between lr_min and lr_max)"),
        ("lr_max", "largest learning rate a feature may draw"),
        ("copies", "output-layer copies, each with its own log-spaced rate"),
        ("theta", "switch averaging of the output copies: prior chance that another switch may follow"),
        ("momentum", "SGD momentum, in [0, 1)"),
        ("weight_decay", "L2 weight decay"),
    )),
    ("Seeds and hardware", (
        ("seed", "seed of data splits, initialisation and rate draws"),
        ("seeds", "repeat every run with seeds seed, seed+1, ... (this many)"),
        ("device", "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps"),
    )),
    ("Methods", (
        ("method", "the method(s) a screen ranks by (alrao, the paper's; several: each architecture by the best "
         "of them); compare measures the first against the SGD grid. `alrao methods` lists them"),
        ("baselines", "methods run beside it, one column each: sgd-grid (SGD at every grid rate), adam, and any "
         "`alrao methods` lists; compare: default sgd-grid and adam"),
        ("grid", "SGD rates of sgd-grid and compare; also accepts text like 1e-5:10:7 (7 log-spaced)"),
        ("adam", "compare only: include Adam at its default rate"),
        # The path in two tokens: --help cannot break a long one, and cuts it short at 80 columns.
        ("schedule_net", "mlrsnet: a net saved by an mlrsnet run (schedule-nets/ARCH-seedS.pt in its run "
         "directory) that drives SGD frozen"),
        ("meta_arch", "mlrsnet-transfer: the architecture whose run meta-trains the net the others reuse"),
        ("meta_iters", "reversible-hd: rounds of exact hypergradient steps on the rate schedule before the "
         "final run (each costs about four plain runs)"),
    )),
    ("Output", (
        ("out", "run directory"),
        ("workdir", "folder that relative paths (model files, data) are read from; each run's config.yaml "
         "records it, so that --resume works from any folder"),
        ("plots", "write PNG plots to the run directory"),
        ("fail_fast", "stop at the first failed or diverged run"),
        ("checkpoint_every", "also checkpoint every N steps inside long epochs"),
    )),
)


OPTION_HELP: dict[str, str] = {name: text for _, options in _SECTIONS for name, text in options}
"""One line of why for each option: the ``--help`` of its flag and its comment in ``alrao init``'s file."""


EXAMPLE_SECTIONS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = tuple(
    (title, tuple((name, f"{text}; null = {NULL_MEANS[name]}" if name in NULL_MEANS else text) for name, text in options))
    for title, options in _SECTIONS
)
"""The sections of ``alrao init``'s file: each option with its comment (its why, and what null stands for)."""


EXECUTION_HELP: dict[str, str] = {
    "workers": "runs at once, each in its own process, on Ray",
    "threads_per_run": "torch threads of each run (runs are bit-identical only at the same threads per run)",
    "ray_address": "join this Ray cluster (ray start --head prints it; auto: the one on this machine) "
    "instead of starting a local Ray for the command",
    "cpus_per_run": "CPUs Ray reserves for each run",
    "gpus_per_run": "GPUs Ray reserves for each run; a fraction like 0.25 packs four small runs on one GPU",
    "retries": "times a run whose worker process died (killed, out of memory, node lost) is tried "
    "again from its last checkpoint; an error in the model is a failed run, never retried",
    "isolate": "run each run in a child process of its own, so that model code that calls os._exit, "
    "crashes or hangs in native code fails its run instead of the whole command (docs/reliability.md)",
    "time_grace": "seconds a run may go on past its --time-budget before it is stopped as timed out",
}
"""The help lines of the :class:`ExecutionConfig` flags: where runs execute, not what they compute."""


def help_for(name: str) -> str:
    """An option's help sentence for ``--help`` (its default apart: :func:`default_for_help`).

    Capitalised, unless it opens with a name as the user types it: the method it applies to
    (``mlrsnet: ...``) or its default value (``mnist1d (built in), ...``).
    """
    line = EXECUTION_HELP.get(name) or OPTION_HELP[name]
    first = line.split(" ", 1)[0]
    if not (first.endswith(":") or first == str(default_for_help(name))):
        line = line[:1].upper() + line[1:]
    return line + "."


def default_for_help(name: str) -> Any:
    """An option's default as ``--help`` states it: the value :class:`StudyConfig` (or
    :class:`ExecutionConfig`) gives it, or, where that is None, what None stands for
    (:data:`NULL_MEANS`; None where it stands for nothing worth saying).

    Read from here, so that a default changed in the schema shows in the help at once rather
    than in a second copy that goes stale.
    """
    defaults = EXECUTION_DEFAULTS if name in EXECUTION_HELP else DEFAULTS
    value = getattr(defaults, name)
    return NULL_MEANS.get(name) if value is None else value
