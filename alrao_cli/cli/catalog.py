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




@app.command("methods")
def methods_command(json_out: JsonOpt = False) -> None:
    """List the training methods: what each is, its paper, its defaults, its cost in runs.

    Use a name with [cyan]--method[/] (what a screen ranks by), [cyan]--baseline[/] (a column
    beside it; NAME-grid for methods tuned over [cyan]--grid[/]) or compare's [cyan]--methods[/].

    [bold]Examples[/]

      alrao methods
      alrao screen --method alrao,adam        [dim]# a portfolio: each architecture by its better method[/]
    """
    from dataclasses import asdict

    from rich.table import Table

    from alrao_cli.study.methods import method_catalog

    catalog = method_catalog()
    if json_out:
        out.print_json(data=[asdict(info) for info in catalog])
        return
    table = Table(title="alrao methods (use a name with --method or --baseline)", title_justify="left")
    for column in ("name", "what it is", "paper", "defaults", "cost"):
        table.add_column(column, overflow="fold")
    for info in catalog:
        defaults = ", ".join(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}" for key, value in info.defaults.items())
        table.add_row(info.name, info.summary, info.paper, defaults or "—", info.cost)
    out.print(table)
