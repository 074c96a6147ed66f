"""JSON read back from a run directory, strictly: what a hand edit can break is refused.

Python's ``json`` keeps the last of a key given twice (a ``"runs"`` pasted twice would
silently drop every run listed before it), and it recurses once per level of nesting (a
file of 100000 nested lists is a RecursionError, a traceback; one just under the limit
reads, and the next save of it fails the same way). Both are refused here as a
ValueError whose message says why in a few words; the caller names the file.
"""

from __future__ import annotations

import json
from typing import Any

# alrao writes about six levels (a study's runs, a run's history, a record's posterior);
# a model's keyword arguments in the saved config add a few. Anything deeper was not alrao.
MAX_DEPTH = 64
_TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels"


def loads_strict(text: str) -> Any:
    """``json.loads(text)``, refusing a key given twice in one object and nesting past :data:`MAX_DEPTH`.

    Raises ValueError (``json.JSONDecodeError`` for a syntax error, a subclass).
    """
    try:
        data = json.loads(text, object_pairs_hook=_unique_keys)
    except RecursionError:  # the same rule, met before the parser could finish
        raise ValueError(_TOO_DEEP) from None
    if _deeper_than(data, MAX_DEPTH):
        raise ValueError(_TOO_DEEP)
    return data


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise ValueError(f"the key {key!r} appears twice in one object")
        data[key] = value
    return data


def _deeper_than(data: Any, limit: int) -> bool:
    """Whether ``data`` nests lists and objects more than ``limit`` deep (without recursing itself)."""
    pending = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False
