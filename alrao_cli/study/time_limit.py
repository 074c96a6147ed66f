"""A run given ``--time-budget`` ends even when its model never gives control back.

The budget is checked between training steps, so a forward that never returns (a
``while True``, a ``time.sleep`` forgotten in the code, a deadlock) would hold the
whole screen. Each such run therefore has a hard limit: its budget plus a *grace*,
counted from the moment the run (or the check before it) starts, which also covers
building the model, loading the data and the final validation. Past it the run is
stopped and recorded as "timed out".

The grace is :data:`GRACE_SECONDS`, or :data:`GRACE_SHARE` of the budget for long
budgets, whichever is longer: a healthy run overshoots its budget by at most one step
and one validation pass, and a grace that small would stop runs on a slow validation
set. ``--time-grace SECONDS`` (:attr:`~alrao_cli.config.schema.ExecutionConfig.time_grace`)
sets another one, for a tighter limit (and for tests).

In this process the limit is a SIGALRM timer (:func:`watchdog`): its handler raises
:class:`RunTimedOut` wherever the Python code is, which stops Python-level loops and
sleeps, but not a hang inside native code, which never returns to the interpreter.
With ``--isolate`` the parent process kills the run's process at the same limit, which
stops both (:mod:`alrao_cli.study.isolated_executor`).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from alrao_cli.study.spec import Budget

GRACE_SECONDS = 30.0  # the least a run may go on past its --time-budget (both stated in --time-grace's help)
GRACE_SHARE = 0.5  # ... or this share of the budget, if that is longer
REPEAT_SECONDS = 1.0  # the watchdog fires again this often if model code swallowed it


class RunTimedOut(BaseException):
    """A run went past its time limit (raised by :func:`watchdog`).

    A ``BaseException``, as ``KeyboardInterrupt`` is, so that a model's own
    ``except Exception`` does not swallow it.
    """

    def __init__(self, limit: float) -> None:
        super().__init__(f"stopped {limit:g} s after it started")
        self.limit = limit


def default_grace(budget_seconds: float) -> float:
    """How long a run may go on past a budget of ``budget_seconds``, unless told otherwise."""
    return max(GRACE_SECONDS, GRACE_SHARE * budget_seconds)


def time_limit(budget: Budget, grace: float | None = None) -> float | None:
    """Seconds after its start at which a run is stopped; None where its budget is not in seconds."""
    if budget.seconds is None:
        return None
    return budget.seconds + (default_grace(budget.seconds) if grace is None else grace)


def timed_out_reason(budget: Budget, limit: float) -> str:
    """The one line of a run stopped at ``limit``."""
    return (
        f"stopped {limit:g} s after it started, still running past its {budget.seconds:g} s --time-budget "
        f"and {limit - (budget.seconds or 0.0):g} s of grace (a step or a forward that never returns?)"
    )


@contextmanager
def watchdog(limit: float | None) -> Iterator[None]:
    """Raise :class:`RunTimedOut` in the block's code once ``limit`` seconds have passed.

    Unix and the main thread only (where SIGALRM exists and is delivered); elsewhere, and
    where the process already has an alarm running (it belongs to whoever runs alrao),
    the block runs without a limit. The previous SIGALRM handler is put back afterwards.
    """
    usable = limit is not None and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable or signal.getitimer(signal.ITIMER_REAL)[0] > 0:
        yield
        return
    armed = True

    def expire(signum: int, frame: object) -> None:
        if armed:  # not once the block is leaving: it finished in time
            raise RunTimedOut(limit)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, limit, REPEAT_SECONDS)
    try:
        yield
    finally:
        armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
