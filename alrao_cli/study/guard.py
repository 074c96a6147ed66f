"""Model code runs in the tool's own process: what it does there must not outlive its run.

A screen imports and runs the user's model files (and ``python:`` data factories) in
its own process, one architecture after the other. Whatever one of them does to the
process would otherwise reach the next architectures and the tool itself:

- it may *leave* by ``sys.exit()``, a ``KeyboardInterrupt`` of its own or any other
  ``BaseException``, which an ``except Exception`` lets through and which would end the
  whole command (with exit code 0 and nothing printed, for ``sys.exit(0)``). Inside
  :func:`guard` such an escape becomes :class:`ModelCodeEscaped`, an ordinary
  exception, and so one failed run with its one-line reason. A ``KeyboardInterrupt``
  stays an interruption only if the user asked for a stop while the block ran (a
  Ctrl-C noted by :mod:`alrao_cli.study.signals`); :class:`~alrao_cli.study.time_limit.RunTimedOut`
  passes too;
- it may *change* process-wide settings: the working directory (results would land
  elsewhere), torch's default dtype and gradient mode (the next, healthy model would
  fail), the recursion limit, torch's thread count, ``sys.stdout``. :class:`ProcessState`
  takes them before the block and puts them back after it.

What cannot be undone here (``os._exit``, a hang in native code, threads left running,
memory a native library corrupted) needs a process of its own: ``--isolate``
(:mod:`alrao_cli.study.isolated_executor`). docs/reliability.md says what holds where.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TextIO, TypeVar

import torch

from alrao_cli.errors import AlraoUserError
from alrao_cli.study.signals import note_stop, noting_interrupts, stops_noted
from alrao_cli.study.time_limit import RunTimedOut

MODEL_CODE = "the model code"

_T = TypeVar("_T")


class ModelCodeEscaped(Exception):
    """Model code tried to leave the process or stop the tool (``sys.exit``, its own
    ``KeyboardInterrupt``...); the message is the one line its run is recorded with."""


def escape_reason(escape: BaseException, who: str = MODEL_CODE) -> str:
    """``the model code called sys.exit(0)``, ``... raised KeyboardInterrupt``: what left, in one line."""
    if isinstance(escape, SystemExit):
        code = "" if escape.code is None else repr(escape.code)
        return f"{who} called sys.exit({code})"
    message = " ".join(str(escape).split())
    return f"{who} raised {type(escape).__name__}" + (f": {message}" if message else "")


@dataclass(frozen=True, slots=True)
class ProcessState:
    """The process-wide settings model code is known to change, as they were at one moment."""

    cwd: str
    default_dtype: torch.dtype
    grad_enabled: bool
    recursion_limit: int
    threads: int
    stdout: TextIO
    stderr: TextIO

    @classmethod
    def now(cls) -> ProcessState:
        return cls(
            cwd=os.getcwd(), default_dtype=torch.get_default_dtype(), grad_enabled=torch.is_grad_enabled(),
            recursion_limit=sys.getrecursionlimit(), threads=torch.get_num_threads(),
            stdout=sys.stdout, stderr=sys.stderr,
        )

    def restore(self) -> None:
        """Put back what changed (only that: setting torch's thread count is not free)."""
        if os.getcwd() != self.cwd:
            os.chdir(self.cwd)
        if torch.get_default_dtype() != self.default_dtype:
            torch.set_default_dtype(self.default_dtype)
        torch.set_grad_enabled(self.grad_enabled)
        if sys.getrecursionlimit() != self.recursion_limit:
            sys.setrecursionlimit(self.recursion_limit)
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        sys.stdout, sys.stderr = self.stdout, self.stderr


@contextmanager
def contained(who: str = MODEL_CODE) -> Iterator[None]:
    """Within the block, an escape from the process (see the module's docstring) raises
    :class:`ModelCodeEscaped` instead, with the escape's traceback (so that whoever shows
    it can say where it came from). ``who`` names the code in the reason.

    Exceptions, a time limit's :class:`RunTimedOut` and a stop the user asked for pass
    unchanged.
    """
    noted = stops_noted()
    try:
        with noting_interrupts():
            yield
    except BaseException as escape:
        users_stop = isinstance(escape, KeyboardInterrupt) and stops_noted() != noted
        if isinstance(escape, (Exception, RunTimedOut)) or users_stop:
            raise
        raise ModelCodeEscaped(escape_reason(escape, who)).with_traceback(escape.__traceback__) from None


@contextmanager
def guard(who: str = MODEL_CODE) -> Iterator[None]:
    """Run model code: escapes :func:`contained`, the :class:`ProcessState` put back afterwards.

    Around each run, each preflight and each architecture of ``alrao check``.
    """
    state = ProcessState.now()
    try:
        with contained(who):
            yield
    finally:
        state.restore()


@contextmanager
def usage_error_if_escaped(who: str, doing: str, hint: str) -> Iterator[None]:
    """User code run before any architecture has a run of its own (the model files'
    imports, a data factory): one that tries to leave the process stops the command with
    a usage error, as any failure there does."""
    try:
        with guard(who):
            yield
    except ModelCodeEscaped as escaped:
        raise AlraoUserError(f"{doing}: {escaped}", hint=hint) from escaped


def trusted(callback: Callable[[_T], Any] | None) -> Callable[[_T], Any] | None:
    """``callback``, the tool's own, for calling from guarded code: a ``KeyboardInterrupt``
    it raises (an observer's, a test's ``listening`` hook) is a stop the user asked for."""
    if callback is None:
        return None

    def call(value: _T) -> Any:
        try:
            return callback(value)
        except KeyboardInterrupt:
            note_stop()
            raise

    return call
