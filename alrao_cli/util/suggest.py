""""Did you mean ...?": the closest valid names to a misspelt one, found one way everywhere."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping


def closest(name: str, choices: Iterable[str], n: int = 1) -> list[str]:
    """Up to ``n`` valid names that resemble ``name``, best first, compared without case.

    Names that contain ``name`` come first (``res`` finds ``resnet_small``), then the
    closest by edit similarity; each appears once.
    """
    by_lower: dict[str, str] = {}
    for choice in choices:
        by_lower.setdefault(choice.lower(), choice)
    wanted = name.lower()
    holding = [by_lower[lower] for lower in by_lower if wanted and wanted in lower and lower != wanted]
    similar = [by_lower[lower] for lower in difflib.get_close_matches(wanted, list(by_lower), n=n)]
    return list(dict.fromkeys([*holding, *similar]))[:n]


def did_you_mean(name: str, choices: Iterable[str], aliases: Mapping[str, str] | None = None, n: int = 1) -> str:
    """``"did you mean 'x'? "`` (or ``'x', 'y'``) for a hint, or ``""`` when nothing is close.

    An alias that is closest is given under the name it stands for.
    """
    aliases = aliases or {}
    names = closest(name, [*choices, *aliases], n=n)
    shown = list(dict.fromkeys(aliases.get(found, found) for found in names))
    return f"did you mean {', '.join(repr(found) for found in shown)}? " if shown else ""
