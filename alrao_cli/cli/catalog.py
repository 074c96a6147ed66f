"""``alrao models``: the catalogue of architectures, the zoo's and torchvision's."""

from __future__ import annotations

from typing import Annotated

import typer

from alrao_cli.errors import AlraoUserError
from alrao_cli.cli.app import app, fail, out
from alrao_cli.cli.options import JsonOpt


@app.command()
def models(
    pattern: Annotated[str, typer.Argument(help="Filter names with a glob, e.g. 'res*'.")] = "*",
    torchvision_models: Annotated[bool, typer.Option("--torchvision", help="List torchvision's classifiers instead.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """List the built-in zoo (name, parameters, data shapes it fits) or torchvision's models.

    A pattern that matches nothing is a usage error (exit code 2) naming the closest names.

    [bold]Examples[/]

      alrao models
      alrao models --torchvision 'resnet*'
    """
    from alrao_cli.report import console as summary

    try:
        summary.print_models(pattern, torchvision_models, json_out, out=out)
    except AlraoUserError as error:
        fail(error, debug=False)


