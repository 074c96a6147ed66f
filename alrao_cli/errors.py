"""Errors a user can cause, kept apart from bugs.

Anything raised as :class:`AlraoUserError` is shown by the command line as one red
line (what is wrong, where, how to fix it) with no traceback; everything else is a bug
and keeps its traceback under ``--debug``.
"""

from __future__ import annotations


class AlraoUserError(Exception):
    """A problem the user can fix: bad input, a missing file, an impossible option.

    ``message`` says what is wrong and where; ``hint`` (optional) says how to fix it.
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class AlraoDivergedError(ArithmeticError):
    """Training produced a non-finite loss: the run diverged.

    Divergence is an outcome, not a bug: a screen records it and moves on.
    """

    def __init__(self, step: int, loss: float) -> None:
        super().__init__(f"loss became {loss} at step {step}")
        self.step = step
        self.loss = loss
