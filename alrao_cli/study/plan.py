"""From a study's config to the list of runs it needs: architecture x method x seed.

Planning resolves names and devices, checks that the config's per-architecture keys
name architectures of the study, and returns plain :class:`RunSpec` records, so that
the plan can be shown, resumed, or handed to any executor. It reads the data only for a
whole-zoo study, whose models are those that take the data's examples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import torch

from alrao_cli.config.schema import COMPARE_BASELINES, COMPARE_REFERENCE, DEFAULT_EPOCHS, StudyConfig, model_settings
from alrao_cli.config.paths import resolve_arch, resolve_data_source, resolve_path
from alrao_cli.data.spec import DataInfo, DataSpec
from alrao_cli.errors import AlraoUserError
from alrao_cli.util.suggest import did_you_mean
from alrao_cli.study.methods import baseline_methods, get_method
from alrao_cli.study.methods.base import TrainingMethod
from alrao_cli.sources.build import check_model_arguments
from alrao_cli.sources.arch import expand_arch
from alrao_cli.sources.registry import list_zoo
from alrao_cli.data.load import cached_data
from alrao_cli.results.records import run_key
from alrao_cli.study.spec import Budget, MethodSpec, RunSpec

StudyKind = Literal["screen", "compare"]


@dataclass(frozen=True, slots=True)
class UnresolvedArch:
    """An architecture the user named that could not be imported: recorded as failed."""

    label: str
    reason: str
    hint: str | None = None


@dataclass(frozen=True, slots=True)
class SkippedArch:
    """A zoo model that a whole-zoo study leaves out: it does not take the data's examples."""

    name: str
    fits: str  # the shapes it takes, as `alrao models` shows them


@dataclass(frozen=True, slots=True)
class Plan:
    runs: tuple[RunSpec, ...]
    unresolved: tuple[UnresolvedArch, ...]
    seeds: tuple[int, ...]
    skipped: tuple[SkippedArch, ...] = ()
    input_shape: tuple[int, ...] | None = None  # one example's shape, known when the zoo was filtered

    @property
    def skipped_note(self) -> str | None:
        """One line for the user when zoo models were left out, None when none were."""
        return skipped_note(self.skipped, self.input_shape or ())


def skipped_note(skipped: tuple[SkippedArch, ...], input_shape: tuple[int, ...]) -> str | None:
    """``skipped cnn1d (fits 1-D [L]): the data's examples are shaped [3, 32, 32]``, or None."""
    if not skipped:
        return None
    models = ", ".join(f"{arch.name} (fits {arch.fits})" for arch in skipped)
    return f"skipped {models}: the data's examples are shaped {list(input_shape)}"


def resolve_device(name: str) -> str:
    """``auto`` picks cuda, then mps, then cpu; an unavailable device is a usage error."""
    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise AlraoUserError(
                f"--device {name}: CUDA is not available on this machine",
                hint="use --device cpu (or auto)",
            )
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise AlraoUserError(
                f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)",
                hint="number them from cuda:0",
            )
    if name == "mps" and not torch.backends.mps.is_available():
        raise AlraoUserError("--device mps: MPS is not available on this machine", hint="use --device cpu")
    return name


def budget_of(config: StudyConfig) -> Budget:
    if config.steps is not None:
        return Budget(steps=config.steps)
    if config.time_budget is not None:
        return Budget(seconds=config.time_budget)
    return Budget(epochs=config.epochs or DEFAULT_EPOCHS)


def data_spec_of(config: StudyConfig) -> DataSpec:
    return DataSpec(
        source=resolve_data_source(config),
        data_dir=resolve_path(config, config.data_dir) if config.data_dir is not None else None,
        download=config.download,
        subset=config.subset, val_fraction=config.val_fraction, augment=config.augment, seed=config.seed,
    )


def methods_of(config: StudyConfig, kind: StudyKind) -> list[MethodSpec]:
    """The screened method(s) first (``--method``, Alrao by default), then the baselines.

    A screen runs the baselines named by ``--baseline``; a compare, those or by default
    the paper's (the SGD grid, and Adam unless ``--no-adam``). Baselines come in the
    registry's order. A method tuned over the grid runs once per rate of ``--grid``, any
    other once at its default rate.
    """
    requested = config.baselines
    if kind == "compare" and not requested:
        requested = tuple(name for name in COMPARE_BASELINES if config.adam or name != "adam")
    known = [method.baseline_option for method in baseline_methods()]
    for name in requested:
        if name not in known:
            raise AlraoUserError(
                f"unknown baseline {name!r} ({'--methods' if kind == 'compare' else '--baseline'} or the config key baselines)",
                hint=did_you_mean(name, known) + f"the baselines are {', '.join(known)}",
            )
    screened = [_screened(name) for name in config.method]
    if kind == "compare":
        _refuse_unmeasurable(screened, requested)
    specs = [spec for method in screened for spec in _specs_of(method, config)]
    for method in baseline_methods():
        if method.baseline_option in requested and method.name not in config.method:
            specs += _specs_of(method, config)
    return specs


def _refuse_unmeasurable(measured: list[TrainingMethod], baselines: Sequence[str]) -> None:
    """A compare measures one method run once against SGD at its best ``--grid`` rate: a
    method tuned over the grid cannot be that one, and the SGD grid must run."""
    for method in measured:
        if method.tuned_over_grid:
            raise AlraoUserError(
                f"compare: {method.name} is tuned over --grid, so it cannot be the method measured against the grid",
                hint=f"put a method run once first (alrao, adam, ...) and write it {method.baseline_option}: "
                f"--methods {','.join(dict.fromkeys(('alrao', COMPARE_REFERENCE, method.baseline_option)))}",
            )
    if COMPARE_REFERENCE not in baselines:
        raise AlraoUserError(
            f"compare measures against SGD at its best --grid rate, but {COMPARE_REFERENCE} is not among its methods",
            hint=f"add {COMPARE_REFERENCE} to --methods or to the config key baselines, "
            f"e.g. --methods {','.join(('alrao', *COMPARE_BASELINES))}",
        )


def _screened(name: str) -> TrainingMethod:
    try:
        return get_method(name)
    except AlraoUserError as error:
        raise AlraoUserError(f"--method: {error.message}", hint=error.hint) from None


def _specs_of(method: TrainingMethod, config: StudyConfig) -> list[MethodSpec]:
    options = method.options_type.from_settings(config)
    rates = config.grid if method.tuned_over_grid else (method.default_lr,)
    return [MethodSpec(method.name, lr=lr, options=options) for lr in rates]


def _with_head(methods: list[MethodSpec], head: str | None) -> list[MethodSpec]:
    """Tell the methods that replace the output layer (Alrao) which layer it is, if the user said."""
    if head is None:
        return methods
    return [
        MethodSpec(m.name, m.lr, replace(m.options, head=head)) if hasattr(m.options, "head") else m for m in methods
    ]


def plan_study(config: StudyConfig, kind: StudyKind, data_info: DataInfo | None = None) -> Plan:
    """Every run of the study, in the order they should run: architecture by architecture.

    With no ARCH, the study is every zoo model that takes the data's examples, so the data's
    shape is needed: ``data_info`` when the caller has it, else the data is loaded here,
    through :func:`~alrao_cli.study.attempt.cached_data`, so that the runs do not load it again.
    """
    if config.schedule_net:  # a file the config names, read from its workdir like the others
        config = replace(config, schedule_net=resolve_path(config, config.schedule_net))
    device = resolve_device(config.device)
    data = data_spec_of(config)
    budget = budget_of(config)
    seeds = tuple(range(config.seed, config.seed + config.seeds))
    methods = methods_of(config, kind)
    runs: list[RunSpec] = []
    unresolved: list[UnresolvedArch] = []
    first_problem: AlraoUserError | None = None
    skipped: tuple[SkippedArch, ...] = ()
    input_shape = None
    user_archs = config.archs
    if not user_archs:
        input_shape = (data_info or cached_data(data).info).input_shape
        user_archs, skipped = zoo_fitting(input_shape)
    named = set(config.archs) or {entry.name for entry in list_zoo()}  # what config keys may name
    planned: set[str] = set()  # canonical ARCHs: each model is trained once, however often it is named
    for user_arch in user_archs:
        resolved = resolve_arch(config, user_arch)
        try:
            canonical = expand_arch(resolved)
        except AlraoUserError as error:
            unresolved.append(UnresolvedArch(user_arch, error.message, error.hint))
            first_problem = first_problem or error
            continue
        labels = [user_arch] if len(canonical) == 1 else [_as_written(arch, resolved, user_arch) for arch in canonical]
        named.update(labels)
        for arch, label in zip(canonical, labels):
            if arch in planned:  # another spelling of a model already planned (./m.py and m.py)
                continue
            planned.add(arch)
            kwargs_key, kwargs, head = model_settings(config.model_kwargs, config.heads, user_arch, label)
            if kwargs:
                _check_model_kwargs(arch, kwargs_key, kwargs)
            for seed in seeds:
                for method in _with_head(methods, head):
                    runs.append(
                        RunSpec(
                            key=run_key(label, method.name, method.lr, seed), arch=arch, label=label, method=method,
                            data=data, budget=budget, batch_size=config.batch_size, seed=seed,
                            device=device, loader_workers=config.loader_workers, model_kwargs=dict(kwargs),
                            checkpoint_every=config.checkpoint_every,
                        )
                    )
    _check_keys_name_archs(config, named)
    runs = _settled(runs)
    if not runs and first_problem is not None:
        # Nothing at all can run: the input itself is wrong, a usage error. The error itself
        # is raised again, so that --debug still shows where it came from (its cause).
        raise first_problem
    return Plan(tuple(runs), tuple(unresolved), seeds, skipped, input_shape)


def _settled(runs: list[RunSpec]) -> list[RunSpec]:
    """The runs once each method has seen all of its own (:meth:`TrainingMethod.settle`), in plan order."""
    by_method: dict[str, list[int]] = {}
    for index, spec in enumerate(runs):
        by_method.setdefault(spec.method.name, []).append(index)
    settled = list(runs)
    for name, indices in by_method.items():
        for index, spec in zip(indices, get_method(name).settle([runs[i] for i in indices]), strict=True):
            settled[index] = spec
    return settled


def _as_written(arch: str, resolved: str, user_arch: str) -> str:
    """The label of one model ``user_arch`` names: as the user wrote it, for tables and run keys.

    ``models.py`` (resolved to ``/abs/models.py``) naming ``Small`` gives ``models.py:Small``;
    a zoo pattern (``cnn*``) gives each zoo name.
    """
    if arch.startswith(resolved + ":"):
        return user_arch + arch[len(resolved):]
    return arch


def zoo_fitting(input_shape: tuple[int, ...]) -> tuple[tuple[str, ...], tuple[SkippedArch, ...]]:
    """The zoo models that take examples of this shape, and those set aside, by ``fits``."""
    zoo = list_zoo()
    fitting = tuple(entry.name for entry in zoo if entry.fits_shape(input_shape))
    if not fitting:
        raise AlraoUserError(
            f"no zoo model takes examples shaped {list(input_shape)}",
            hint="name the architectures to screen: file.py, file.py:Name or torchvision:NAME",
        )
    skipped = tuple(SkippedArch(entry.name, entry.fits_label()) for entry in zoo if not entry.fits_shape(input_shape))
    return fitting, skipped


def _check_model_kwargs(arch: str, key: str, kwargs: dict) -> None:
    """A model argument the constructor does not take is a usage error naming its config key."""
    try:
        check_model_arguments(arch, kwargs)
    except AlraoUserError as error:
        raise AlraoUserError(f"config key 'model_kwargs.{key}': {error.message}", hint=error.hint) from error


def _check_keys_name_archs(config: StudyConfig, named: set[str]) -> None:
    """Each ``model_kwargs`` and ``heads`` key names an architecture of the study (``heads``: or ``*``).

    A misspelt key (``mpl``) would otherwise apply to nothing, and the run would silently
    train the architecture without the settings meant for it.
    """
    for option, keys in (("model_kwargs", config.model_kwargs), ("heads", config.heads)):
        for key in keys:
            if key in named or (option == "heads" and key == "*"):
                continue
            suggestion = did_you_mean(key, sorted(named))
            archs = ", ".join(config.archs) if config.archs else "the whole zoo"
            raise AlraoUserError(
                f"config key '{option}.{key}' names no architecture of this study",
                hint=f"{suggestion}its architectures: {archs}",
            )
