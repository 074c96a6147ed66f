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
``step()`` (``_use_grad_for_differentiable``): that one is left alone.
"""

from __future__ import annotations

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
