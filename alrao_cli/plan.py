"""From a study's config to the list of runs it needs: architecture x method x seed.

Planning is pure: it resolves names and devices and returns plain :class:`RunSpec`
records, so that the plan can be shown, resumed, or handed to any executor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from alrao_cli.config import DEFAULT_EPOCHS, StudyConfig
from alrao_cli.data import DataSpec
from alrao_cli.errors import AlraoUserError
from alrao_cli.methods import MethodSpec
from alrao_cli.registry import expand_arch, list_zoo
from alrao_cli.train import Budget, RunSpec

StudyKind = Literal["screen", "compare"]


@dataclass(frozen=True, slots=True)
class UnresolvedArch:
    """An architecture the user named that could not be imported: recorded as failed."""

    label: str
    reason: str
    hint: str | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    runs: tuple[RunSpec, ...]
    unresolved: tuple[UnresolvedArch, ...]
    seeds: tuple[int, ...]


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
        source=config.data, data_dir=config.data_dir, download=config.download,
        subset=config.subset, val_fraction=config.val_fraction, augment=config.augment, seed=config.seed,
    )


def methods_of(config: StudyConfig, kind: StudyKind) -> list[MethodSpec]:
    """Alrao first, then the single-rate SGD grid and Adam where the study asks for them."""
    shared = {"momentum": config.momentum, "weight_decay": config.weight_decay}
    alrao = MethodSpec(
        "alrao",
        options={
            "lr_min": config.lr_min, "lr_max": config.lr_max, "copies": config.copies,
            "theta": config.theta, **shared,
        },
    )
    methods = [alrao]
    with_grid = kind == "compare" or "sgd-grid" in config.baselines
    with_adam = config.adam if kind == "compare" else "adam" in config.baselines
    if with_grid:
        methods += [MethodSpec("sgd", lr=lr, options=shared) for lr in config.grid]
    if with_adam:
        methods.append(MethodSpec("adam", lr=1e-3, options={"weight_decay": config.weight_decay}))
    return methods


def _with_head(methods: list[MethodSpec], head: str | None) -> list[MethodSpec]:
    """Tell Alrao which layer is the output layer of this architecture, if the user said."""
    if head is None:
        return methods
    return [
        MethodSpec(m.name, m.lr, {**m.options, "head": head}) if m.name == "alrao" else m for m in methods
    ]


def run_key(label: str, method: MethodSpec, seed: int) -> str:
    rate = f"|lr={method.lr:.12g}" if method.name == "sgd" else ""
    return f"{label}|{method.name}{rate}|seed={seed}"


def plan_study(config: StudyConfig, kind: StudyKind) -> Plan:
    """Every run of the study, in the order they should run: architecture by architecture."""
    device = resolve_device(config.device)
    data = data_spec_of(config)
    budget = budget_of(config)
    seeds = tuple(range(config.seed, config.seed + config.seeds))
    methods = methods_of(config, kind)
    runs: list[RunSpec] = []
    unresolved: list[UnresolvedArch] = []
    for user_arch in config.archs or tuple(entry.name for entry in list_zoo()):
        try:
            canonical = expand_arch(user_arch)
        except AlraoUserError as error:
            unresolved.append(UnresolvedArch(user_arch, error.message, error.hint))
            continue
        for arch in canonical:
            label = user_arch if len(canonical) == 1 else arch
            kwargs = config.model_kwargs.get(user_arch, config.model_kwargs.get(arch, {}))
            head = config.heads.get(user_arch) or config.heads.get(arch) or config.heads.get("*")
            for seed in seeds:
                for method in _with_head(methods, head):
                    runs.append(
                        RunSpec(
                            key=run_key(label, method, seed), arch=arch, label=label, method=method,
                            data=data, budget=budget, batch_size=config.batch_size, seed=seed,
                            device=device, workers=config.workers, model_kwargs=dict(kwargs),
                            checkpoint_every=config.checkpoint_every,
                        )
                    )
    if not runs and unresolved:
        # Nothing at all can run: the input itself is wrong, say it as a usage error.
        raise AlraoUserError(unresolved[0].reason, hint=unresolved[0].hint)
    return Plan(tuple(runs), tuple(unresolved), seeds)
