"""Building one canonical ARCH into an untrained model for the data at hand."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from alrao_cli.alrao.model import lazy_parameters_text
from alrao_cli.errors import AlraoUserError
from alrao_cli.sources.arch import Arch, expand_arch, lookup_in_file, parse_arch
from alrao_cli.sources.registry import import_model_source, zoo_entries


# Arguments alrao derives from the data; a user's model arguments may not override them.
DATA_ARGUMENTS = ("num_classes", "input_shape", "in_channels")

# torchvision builders whose defaults do not suit a screen, and what alrao passes them
# instead (a user's model_kwargs still win). GoogLeNet and Inception v3 return their
# auxiliary classifiers' outputs beside the logits in training mode, which no screen's
# loss reads: built without them, they train as any classifier. ``init_weights`` keeps
# torchvision's own initialisation, said aloud so that it does not warn on every build.
TORCHVISION_DEFAULTS: dict[str, dict[str, Any]] = {
    "googlenet": {"aux_logits": False, "init_weights": True},
    "inception_v3": {"aux_logits": False, "init_weights": True},
}


# -- building -----------------------------------------------------------------------------
def build_model(
    arch: str, num_classes: int, input_shape: tuple[int, ...], kwargs: dict[str, Any] | None = None
) -> nn.Module:
    """Build the one model ``arch`` names, untrained, for this data.

    The factory (or class) receives, among ``num_classes``, ``input_shape``,
    ``in_channels`` (``input_shape[0]`` for ``[C, ...]`` examples, 1 for ``[L]``) and the
    user's ``kwargs``, those its signature accepts (``**kwargs`` accepts all). torchvision
    models get ``num_classes``, ``weights=None`` (nothing is downloaded), the arguments of
    :data:`TORCHVISION_DEFAULTS` and ``kwargs``.
    """
    canonical = _single(arch)
    user_kwargs = dict(kwargs or {})
    parsed = parse_arch(canonical)
    _check_reserved(arch, parsed, user_kwargs)
    if parsed.kind == "torchvision":
        import torchvision.models

        factory: Callable[..., Any] = torchvision.models.get_model
        suited = TORCHVISION_DEFAULTS.get(parsed.name.lower(), {})
        arguments = {"name": parsed.name, "weights": None, "num_classes": num_classes, **suited, **user_kwargs}
    else:
        factory = _factory(parsed)
        offered = {
            "num_classes": num_classes,
            "input_shape": tuple(input_shape),
            "in_channels": input_shape[0] if len(input_shape) >= 2 else 1,
        }
        arguments = _arguments_for(canonical, factory, offered, user_kwargs)
        if parsed.kind == "zoo" and not (entry := zoo_entries()[parsed.name]).fits_shape(tuple(input_shape)):
            return _call(canonical, factory, arguments, hint=(
                f"{parsed.name} fits {entry.fits_label()}; this data's examples are {list(input_shape)}: "
                "`alrao models` lists the zoo models and what each fits"
            ))
    return _call(canonical, factory, arguments)


def check_model_arguments(arch: str, kwargs: dict[str, Any]) -> None:
    """Raise the error :func:`build_model` would raise for these model arguments, building nothing.

    A study checks its config's ``model_kwargs`` this way before anything trains, so that
    a misspelt argument is a usage error naming the config key rather than a failed run.
    A factory taking ``**kwargs`` (torchvision's among them) accepts any name here.
    """
    canonical = _single(arch)
    parsed = parse_arch(canonical)
    _check_reserved(arch, parsed, kwargs)
    if parsed.kind != "torchvision":
        parameters = _keyword_signature(_factory(parsed))
        if parameters is not None:
            _accepted_names(canonical, parameters, kwargs)


def _single(arch: str) -> str:
    """The one canonical ARCH that ``arch`` names; naming several is an error."""
    canonical = expand_arch(arch)
    if len(canonical) != 1:
        raise AlraoUserError(
            f"{arch} names {len(canonical)} models; build them one at a time",
            hint=f"use one of: {', '.join(canonical)}",
        )
    return canonical[0]


def _check_reserved(arch: str, parsed: Arch, user_kwargs: dict[str, Any]) -> None:
    reserved = {*DATA_ARGUMENTS, "weights"} if parsed.kind == "torchvision" else set(DATA_ARGUMENTS)
    overridden = sorted(set(user_kwargs) & reserved)
    if overridden:
        raise AlraoUserError(
            f"model argument(s) {', '.join(overridden)} cannot be set for {arch}",
            hint="alrao sets num_classes, input_shape and in_channels from the data, "
            "and builds torchvision models untrained",
        )


def _factory(parsed: Arch) -> Callable[..., Any]:
    if parsed.kind == "zoo":
        return zoo_entries()[parsed.name].factory
    source, module = import_model_source(parsed.path)
    return lookup_in_file(module, source, parsed)


def _keyword_signature(factory: Callable[..., Any]) -> list[inspect.Parameter] | None:
    """The factory's parameters; None when it takes any keyword (``**kwargs``, or no signature to read)."""
    try:
        parameters = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):  # no signature to read (a builtin): let the call decide
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return parameters


def _accepted_names(arch: str, parameters: list[inspect.Parameter], user_kwargs: dict[str, Any]) -> list[str]:
    """The names the parameters take by keyword; a user's argument among none of them is an error."""
    by_keyword = [
        p.name
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]
    rejected = sorted(set(user_kwargs) - set(by_keyword))
    if rejected:
        settable = [name for name in by_keyword if name not in DATA_ARGUMENTS]
        raise AlraoUserError(
            f"{arch} does not take the model argument(s) {', '.join(rejected)}",
            hint=f"it takes: {', '.join(settable)}" if settable else "it takes no model arguments",
        )
    return by_keyword


def _arguments_for(
    arch: str, factory: Callable[..., Any], offered: dict[str, Any], user_kwargs: dict[str, Any]
) -> dict[str, Any]:
    """The keyword arguments ``factory``'s signature takes, from the offered and the user's."""
    everything = {**offered, **user_kwargs}
    parameters = _keyword_signature(factory)
    if parameters is None:
        return everything
    by_keyword = _accepted_names(arch, parameters, user_kwargs)
    arguments = {name: value for name, value in everything.items() if name in by_keyword}
    missing = [
        p.name
        for p in parameters
        if p.default is inspect.Parameter.empty
        and p.kind is not inspect.Parameter.VAR_POSITIONAL
        and p.name not in arguments
    ]
    if missing:
        raise AlraoUserError(
            f"{arch} needs the argument(s) {', '.join(missing)}, which alrao cannot supply",
            hint="give them default values, or pass them as model arguments",
        )
    return arguments


def _call(
    arch: str, factory: Callable[..., Any], arguments: dict[str, Any],
    hint: str = "check the model's code and the arguments given to it",
) -> nn.Module:
    """``factory(**arguments)``, any error as one line; ``hint`` says what to do about it."""
    try:
        model = factory(**arguments)
    except AlraoUserError:
        raise
    except Exception as error:
        raise AlraoUserError(f"building {arch} failed: {type(error).__name__}: {error}", hint=hint) from error
    if not isinstance(model, nn.Module):
        raise AlraoUserError(
            f"{arch} returned a {type(model).__name__}, not an nn.Module",
            hint="a model factory must return the model (an nn.Module instance)",
        )
    return model


def count_parameters(model: nn.Module) -> int:
    """How many trainable numbers the model has (shared parameters counted once).

    A lazy layer (``nn.LazyLinear``, ``nn.LazyConv2d``...) has no size until its first
    forward pass; counting before one is an error that says so, never a wrong number.
    """
    lazy = lazy_parameters_text(model)
    if lazy:
        raise ValueError(
            f"cannot count the parameters of {type(model).__name__} yet: {lazy} not initialized "
            "(lazy layers take their size from the first input); count them after a forward pass"
        )
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
