"""Numbers as every report shows them: losses, accuracies, rates, counts, durations, curves.

One place decides how a value reads, so a rate is ``1.0e-01`` in the rich tables, the
Markdown export and a plot's legend alike. Each function takes ``None`` (or a non-finite
number, where one can occur) and answers :data:`MISSING` for it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

SPARK_BLOCKS = "▁▂▃▄▅▆▇█"
MISSING = "—"
LARGE_LOSS = 1e4  # from here on a loss shows 4 significant digits: 6.002e+22, not 23 digits


def sparkline(values: Iterable[float]) -> str:
    """A loss curve in one line of blocks: the lowest loss is the lowest block.

    Non-finite values (a diverged epoch) are a space; a flat curve sits mid-height.
    """
    values = list(values)
    finite = [value for value in values if math.isfinite(value)]
    if not finite:
        return " " * len(values)
    low, high = min(finite), max(finite)
    top = len(SPARK_BLOCKS) - 1

    def block(value: float) -> str:
        if not math.isfinite(value):
            return " "
        if high == low:
            return SPARK_BLOCKS[top // 2]
        return SPARK_BLOCKS[round((value - low) / (high - low) * top)]

    return "".join(block(value) for value in values)


def format_lr(lr: float | None) -> str:
    """A rate as the tables show it, e.g. ``3.2e-02``."""
    return MISSING if lr is None else f"{lr:.1e}"


def lr_key(lr: float) -> str:
    """A rate as a JSON key, e.g. ``0.01`` or ``1e-05``: ``float(key)`` gives the rate back
    (grid rates carry at most 12 significant digits), so keys match ``best_sgd_lr``."""
    return f"{lr:.12g}"


def format_loss(value: float | None, std: float | None = None) -> str:
    """``0.3100 ± 0.0141``; a huge loss (a rate that blew up yet stayed finite) stays short."""
    if value is None:
        return MISSING
    return f"{_loss_number(value)} ± {_loss_number(std)}" if std is not None else _loss_number(value)


def _loss_number(value: float) -> str:
    return f"{value:.4g}" if abs(value) >= LARGE_LOSS else f"{value:.4f}"


def format_acc(value: float | None, std: float | None = None) -> str:
    """An accuracy in percent, ``87.5% ± 1.2%``."""
    if value is None:
        return MISSING
    return f"{100 * value:.1f}% ± {100 * std:.1f}%" if std is not None else f"{100 * value:.1f}%"


def format_params(count: int | None) -> str:
    """A parameter count with thousands separators, ``12,345``."""
    return MISSING if count is None else f"{count:,}"


def format_seconds(seconds: float) -> str:
    """``12.3s``, ``4m05s`` or ``2h03m``: as precise as a glance at a table needs."""
    if not math.isfinite(seconds):
        return MISSING
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_gap(value: float | None) -> str:
    """How far Alrao's loss is above (``+4.2%``) or below the best SGD rate's."""
    return MISSING if value is None else f"{100 * value:+.1f}%"


def format_rank(rank: int, ranks: Sequence[int]) -> str:
    """A rank as shown among ``ranks``: one that several entries share reads ``1=``."""
    return f"{rank}=" if ranks.count(rank) > 1 else str(rank)


def status_note(status: str, reason: str | None) -> str:
    """A status with its reason, ``failed: ImportError: ...``, where one column holds both."""
    return status if reason is None else f"{status}: {reason}"


def printable(text: str) -> str:
    """``text`` with control characters shown as ``\\xNN``: a name read from a results file
    (an ARCH, a reason) never sends escape sequences to the user's terminal."""
    return "".join(character if character.isprintable() else f"\\x{ord(character):02x}" for character in text)
