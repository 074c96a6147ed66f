"""The one-line reason a failure is shown with, in tables, JUnit reports and results."""

from __future__ import annotations


def first_line(error: BaseException) -> str:
    """The first non-empty line of the error's message ('' when it has none)."""
    for line in str(error).strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


def one_line_reason(error: BaseException) -> str:
    """``Type: first line of the message``: what a table row can hold, without a traceback."""
    line = first_line(error)
    return f"{type(error).__name__}: {line}" if line else type(error).__name__
