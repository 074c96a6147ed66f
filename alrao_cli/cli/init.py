"""``alrao init``: write a commented example config."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from alrao_cli.errors import AlraoUserError
from alrao_cli.cli.app import app, err, fail


@app.command()
def init(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="Where to write the example config (missing folders are created).")] = Path("alrao.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented example config (every option with its default).

    [bold]Example[/]

      alrao init screen.yaml && alrao screen --config screen.yaml
    """
    from alrao_cli.config.yaml_io import write_example_config

    try:
        write_example_config(path, force=force)
    except AlraoUserError as error:
        fail(error, False)
    err.print(
        f"wrote {escape(str(path))}: edit it, then run [bold]alrao screen --config {escape(str(path))}[/]",
        soft_wrap=True,  # a command to copy: never wrapped
    )

