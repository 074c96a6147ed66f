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
    """Training produced a non-finite loss, or one so large that the weights have blown up.

    Divergence is an outcome, not a bug: a screen records it (status "diverged", the
    message as its reason) and moves on. ``message`` replaces the default wording where
    the caller knows more (which loss, which epoch, the level it crossed).
    """

    def __init__(self, step: int, loss: float, message: str | None = None) -> None:
        super().__init__(message or f"loss became {loss} at step {step}")
        self.step = step
        self.loss = loss


class AlraoTerminated(KeyboardInterrupt):
    """SIGTERM asked the process to stop (a scheduler's or ``kill``'s polite stop).

    A subclass of :class:`KeyboardInterrupt`, so that everything which lets Ctrl-C through
    lets it through too and a study stops the same way: results kept, resume command
    printed. Only the exit code differs: 143 (128 + SIGTERM) rather than 130.
    """


_OUT_OF_MEMORY_MARKS = (
    "CUDA out of memory",  # torch.cuda.OutOfMemoryError
    "DefaultCPUAllocator: can't allocate memory",  # what a real CPU OOM raises (a RuntimeError)
    "CUBLAS_STATUS_ALLOC_FAILED",
    "MPS backend out of memory",
)


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` means the device ran out of memory (a resource, not a bug).

    PyTorch rarely raises :class:`MemoryError`: its allocators raise a RuntimeError
    (or ``torch.cuda.OutOfMemoryError``, a subclass) that says so in its message.
    """
    if isinstance(error, MemoryError):
        return True
    return isinstance(error, RuntimeError) and any(mark in str(error) for mark in _OUT_OF_MEMORY_MARKS)
