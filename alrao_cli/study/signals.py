"""Stopping a study politely: Ctrl-C, SIGTERM (a scheduler, ``kill``) and SIGHUP (a closed
terminal) all stop it the same way, and whatever arrives while it saves is ignored.

The first signal raises in the study's thread (``KeyboardInterrupt`` for Ctrl-C,
:class:`~alrao_cli.errors.AlraoTerminated` for the others), so the run in flight stops at
once and keeps its last checkpoint; the finished runs are then saved. A second signal
during that final save would lose it, so from the first one on, further ones are noted
and ignored until the block ends.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from alrao_cli.errors import AlraoTerminated

_POLITE = (signal.SIGTERM, signal.SIGHUP)


@contextmanager
def stop_signals_as_interrupt() -> Iterator[None]:
    """Within the block, the first stop signal raises; later ones are ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may handle signals
        return
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        if stopping:
            return  # the study is already stopping: let it save
        stopping = True
        raise KeyboardInterrupt() if signum == signal.SIGINT else AlraoTerminated()

    previous = {number: signal.signal(number, stop) for number in (signal.SIGINT, *_POLITE)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
