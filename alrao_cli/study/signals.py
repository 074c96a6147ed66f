"""Stopping a study politely: Ctrl-C, SIGTERM (a scheduler, ``kill``) and SIGHUP (a closed
terminal) all stop it the same way, and whatever arrives while it saves is ignored.

The first signal raises in the study's thread (``KeyboardInterrupt`` for Ctrl-C,
:class:`~alrao_cli.errors.AlraoTerminated` for the others), so the run in flight stops at
once and keeps its last checkpoint; the finished runs are then saved. A second signal
during that final save would lose it, so from the first one on, further ones are noted
and ignored until the block ends.

Model code can raise ``KeyboardInterrupt`` too (by hand, or a library's idea of a
cancel), and that one must end its run as failed, not stop the study. Guessing from
the exception cannot tell them apart, so every stop the user asks for is *noted* as it
arrives (:func:`stops_noted`): alrao's own handlers note the signals they receive, and
:func:`noting_interrupts` makes sure a handler notes Ctrl-C wherever model code runs.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from alrao_cli.errors import AlraoTerminated

_POLITE = (signal.SIGTERM, signal.SIGHUP)

_noted = 0  # stops the user asked for in this process's life; only its changes mean anything


def note_stop() -> None:
    """Count a stop the user asked for: a stop signal, or the tool's own listener stopping a study."""
    global _noted
    _noted += 1


def stops_noted() -> int:
    """How many stops were noted so far: a KeyboardInterrupt is the user's if this changed while it flew."""
    return _noted


class _Noting:
    """A signal handler that notes the stop, then does what the handler it wraps does."""

    def __init__(self, then: Callable[[int, Any], Any]) -> None:
        self.then = then

    def __call__(self, signum: int, frame: Any) -> None:
        note_stop()
        self.then(signum, frame)


@contextmanager
def noting_interrupts() -> Iterator[None]:
    """Within the block, Ctrl-C does what it did, but is noted first (:func:`stops_noted`).

    Nothing changes where the SIGINT handler already notes (a study's, below), where
    Ctrl-C is ignored or left to the system, or outside the main thread (which alone
    receives signals, so that a KeyboardInterrupt raised in another thread is never a
    Ctrl-C).
    """
    current = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or isinstance(current, _Noting) or not callable(current):
        yield
        return
    signal.signal(signal.SIGINT, _Noting(current))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, current)


@dataclass(slots=True)
class FirstStop:
    """Which stop signal came first in a :func:`stop_signals_as_interrupt` block, if any.

    The exception a signal raises says so too (:class:`AlraoTerminated` for SIGTERM and
    SIGHUP), but not always by the time it reaches the study: Ray turns any
    ``KeyboardInterrupt`` raised while it waits into a plain one. The number stays here.
    """

    signum: int | None = None

    @property
    def polite(self) -> bool:
        """SIGTERM or SIGHUP: the study ends as terminated (exit code 143), not interrupted."""
        return self.signum in _POLITE


@contextmanager
def stop_signals_as_interrupt() -> Iterator[FirstStop]:
    """Within the block, the first stop signal raises; later ones are ignored. All are noted,
    and the first is kept in the :class:`FirstStop` the block yields."""
    first = FirstStop()
    if threading.current_thread() is not threading.main_thread():
        yield first  # only the main thread may handle signals
        return

    def stop(signum: int, frame: object) -> None:
        if first.signum is not None:
            return  # the study is already stopping: let it save
        first.signum = signum
        raise KeyboardInterrupt() if signum == signal.SIGINT else AlraoTerminated()

    previous = {number: signal.signal(number, _Noting(stop)) for number in (signal.SIGINT, *_POLITE)}
    try:
        yield first
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
