"""The ``alrao`` command line: the Typer app, its consoles, the one-line error, and ``main``.

Each command lives in a module of its own (``study``: screen and compare; ``check``;
``report``; ``catalog``: models; ``init``) and only parses, calls one function of the
layer below, and prints. Progress and tables for people go to stderr, so that ``--json``
on stdout stays clean and pipeable.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
import logging

import os
import sys
import threading
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from alrao_cli.errors import AlraoUserError

app = typer.Typer(
    name="alrao",
    no_args_is_help=True,
    rich_markup_mode="rich",
    add_completion=False,
    help="Screen neural-network architectures without tuning their learning rate "
    "(Alrao: All Learning Rates At Once).",
)
# Piped output (a file, CliRunner, CI logs) gets room for the whole table rather than 80 columns.
out = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 120)
err = Console(stderr=True)


DISTRIBUTION = "alrao-cli"  # pyproject.toml's project name, which the version is read from


def installed_version() -> str:
    """The installed distribution's version (pyproject.toml's, through the package metadata),
    or a plain word where the code runs from a checkout that was never installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return f"unknown ({DISTRIBUTION} is not installed)"


def _print_version(wanted: bool) -> None:
    if wanted:
        typer.echo(f"alrao {installed_version()}")
        raise typer.Exit(0)


@app.callback()
def _options_of_alrao(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print alrao's version and exit."),
    ] = None,
) -> None:
    """Options of ``alrao`` itself, before the command (Typer's help is the app's ``help``)."""


@contextlib.contextmanager
def results_console(divert: bool) -> Iterator[Console]:
    """The console a command prints its results on: ``out``; with ``divert`` (``--json``),
    one on the real standard output, while everything else written there goes to stderr.

    Model code runs inside the block and may print, at the Python level (``print``) or
    below it (``os.write(1, ...)``, a C library's ``printf``): either would corrupt the
    JSON. So ``sys.stdout`` becomes ``sys.stderr``, and file descriptor 1 points at
    stderr's, while a duplicate of the real standard output carries the results. Where
    standard output has no descriptor (a test runner's capture), the first alone.
    """
    if not divert:
        yield out
        return
    real = sys.stdout
    try:
        descriptor, diverted_to = real.fileno(), sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        with contextlib.redirect_stdout(sys.stderr):
            yield Console(file=real)
        return
    real.flush()
    kept = os.dup(descriptor)
    os.dup2(diverted_to, descriptor)
    try:
        with (
            open(kept, "w", encoding=real.encoding, errors=real.errors, closefd=False) as results,
            contextlib.redirect_stdout(sys.stderr),
        ):
            yield Console(file=results)
    finally:
        os.dup2(kept, descriptor)
        os.close(kept)

@contextlib.contextmanager
def logs_to_stderr(debug: bool) -> Iterator[None]:
    """alrao's own log lines on stderr while a command runs (debug ones with --debug).

    A handler on the ``alrao_cli`` logger alone, removed afterwards: the root logger, and
    so the logging of a program that calls the command in-process, is left as it was.
    """
    logger = logging.getLogger("alrao_cli")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def fail(error: AlraoUserError, debug: bool) -> None:
    if debug:
        raise error
    hint = f" [dim]({escape(error.hint)})[/]" if error.hint else ""
    err.print(f"[bold red]error:[/] {escape(error.message)}{hint}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


# click's exceptions, from whichever click typer uses (recent typers bundle their own).
_click_exceptions = sys.modules[typer.BadParameter.__module__]
_NoArgsIsHelpError = getattr(_click_exceptions, "NoArgsIsHelpError", ())  # click >= 8.2


def main() -> None:
    """Console-script entry point: a mistyped flag or value is one red line, exit code 2."""
    _leave(_run_app())


def _run_app() -> int:
    """The command's exit code, its usage errors and interruption printed."""
    try:
        code = app(prog_name="alrao", standalone_mode=False)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]")
        return 130
    except _click_exceptions.UsageError as error:
        if isinstance(error, _NoArgsIsHelpError):
            return error.exit_code  # the help is already printed
        command = error.ctx.command_path if error.ctx is not None else "alrao"
        err.print(
            f"[bold red]error:[/] {escape(error.format_message())} [dim](see {escape(command)} --help)[/]",
            highlight=False, soft_wrap=True,
        )
        return error.exit_code
    return code or 0


def _leave(code: int) -> None:
    """Exit with ``code``, even where model code left a thread running that would hold the process.

    Python waits for every non-daemon thread before it exits: a model's forgotten thread
    would keep a finished command alive for ever. Once the results are out, such threads
    are left behind (after a note), with the output flushed.
    """
    stuck = [
        thread for thread in threading.enumerate()
        if thread.is_alive() and not thread.daemon and thread is not threading.main_thread()
    ]
    if not stuck:
        sys.exit(code)
    names = ", ".join(thread.name for thread in stuck)
    err.print(f"[yellow]note:[/] not waiting for thread(s) still running (model code's?): {escape(names)}", highlight=False)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# The commands register themselves on ``app`` when imported, in the order --help lists them.
from alrao_cli.cli import study  # noqa: E402, F401, I001
from alrao_cli.cli import check  # noqa: E402, F401
from alrao_cli.cli import report  # noqa: E402, F401
from alrao_cli.cli import catalog  # noqa: E402, F401
from alrao_cli.cli import init  # noqa: E402, F401
