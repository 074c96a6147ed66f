"""``alrao models`` and ``alrao methods``: the catalogues of architectures (the zoo's and
torchvision's) and of training methods."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from alrao_cli.errors import AlraoUserError
from alrao_cli.cli.app import app, fail, out
from alrao_cli.cli.options import JsonOpt, plain_value

if TYPE_CHECKING:
    from rich.table import Table

    from alrao_cli.study.methods import MethodInfo


@app.command()
def models(
    pattern: Annotated[str, typer.Argument(metavar="PATTERN", help="Filter names with a glob, e.g. 'res*'.")] = "*",
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
      alrao screen --method alrao,adam    [dim]# each architecture by its better method[/]
    """
    from dataclasses import asdict

    from alrao_cli.study.methods import method_catalog

    catalog = method_catalog()
    if json_out:
        out.print_json(data=[asdict(info) for info in catalog])
        return
    out.print(_methods_table(catalog))


def _methods_table(catalog: list[MethodInfo]) -> Table:
    """Three columns, so that the table reads at 80 columns too: the name; what the method is,
    its paper and its cost; its defaults, one ``name=value`` a line, never split inside (a
    value broken across lines reads as two values)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title="alrao methods (use a name with --method or --baseline)", title_justify="left")
    table.add_column("name", no_wrap=True)
    table.add_column("what it is, paper, cost", ratio=1)
    table.add_column("defaults", no_wrap=True)
    for info in catalog:
        about = Text(info.summary)
        if info.paper:
            about.append(f"\npaper: {info.paper}", style="dim")
        about.append(f"\ncost: {info.cost}")
        defaults = "\n".join(f"{key}={plain_value(value)}" for key, value in info.defaults.items())
        table.add_row(info.name, about, Text(defaults or "—", no_wrap=True))
    return table
