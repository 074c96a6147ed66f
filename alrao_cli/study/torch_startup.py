"""Keep ``torch._dynamo`` (about 2 s of imports, a quarter of a short screen's start-up)
out of processes that never compile.

``torch.optim.Optimizer``'s ``add_param_group``, ``zero_grad``, ``state_dict`` and
``load_state_dict`` are wrapped by ``torch._disable_dynamo``, which imports
``torch._dynamo`` on their first call only to build a "do not compile this" wrapper,
and caches that wrapper on the function as ``__dynamo_disable``. A screen never runs
under ``torch.compile``, so the wrapper would only ever call the function: caching the
function itself as its own wrapper gives the same calls without the import. Only the
study and check commands do this, in their own process; the library (``AlraoSGD`` in a
user's loop, perhaps under ``torch.compile``) is left as torch made it. Where torch
changes this mechanism, nothing is patched and start-up is merely slower.

Baselines stepped by ``torch.optim`` optimizers still import it on their first
``step()`` (``_use_grad_for_differentiable``): that one is left alone, but made before a
run's clock starts (:func:`import_what_the_first_step_imports`), so that it is not
charged to whichever run steps first.
"""

from __future__ import annotations

import importlib
import sys

import torch

_WRAPPED = ("add_param_group", "zero_grad", "state_dict", "load_state_dict")


def skip_dynamo_import_for_optimizers() -> bool:
    """Pre-fill the optimizer methods' disable-cache; True if torch's layout allowed it."""
    patched = False
    for name in _WRAPPED:
        method = getattr(torch.optim.Optimizer, name, None)
        original = getattr(method, "__wrapped__", None)
        if original is None or not callable(original):
            continue
        if getattr(original, "__dynamo_disable", None) is None:
            original.__dynamo_disable = original
        patched = True
    return patched


def import_what_the_first_step_imports(optimizer_type: type) -> bool:
    """Import ``torch._dynamo`` now if ``optimizer_type.step()`` would on its first call; True if it did.

    ``torch.optim``'s own optimizers wrap ``step`` in ``_use_grad_for_differentiable``,
    which imports it (about 2 s) on the process's first step. Called in a run's set-up, so
    that its seconds, the time column and a compare's cost ratio count training only,
    instead of charging the import to the first run that steps such an optimizer (and by
    ``alrao check``, whose train item steps Adam, for the same reason).
    """
    if "torch._dynamo" in sys.modules:
        return False
    layer = getattr(optimizer_type, "step", None)
    while layer is not None:  # torch wraps step again (profiling hooks) once an instance exists
        code = getattr(layer, "__code__", None)
        if code is not None and "torch._dynamo" in code.co_names:
            importlib.import_module("torch._dynamo")
            return True
        layer = getattr(layer, "__wrapped__", None)
    return False
