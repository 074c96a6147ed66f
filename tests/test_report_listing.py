"""`alrao models`: the rows are computed in sources (models built there), the report only prints them."""

from __future__ import annotations

import dataclasses
import io
import json

import pytest
from rich.console import Console

from alrao_cli.report.console import print_zoo
from alrao_cli.sources.build import build_model
from alrao_cli.sources.listing import ZooRow, zoo_rows

ROWS = [ZooRow("tiny", 1234567, "1-D [L]", "a [bracketed] description"), ZooRow("wide", 8, "image [C,H,W]", "wide")]


def test_zoo_rows_count_the_parameters_on_mnist1d_shapes() -> None:
    [row] = zoo_rows("mlp")
    model = build_model("mlp", 10, (40,))
    assert row.name == "mlp" and row.fits == "1-D [L], image [C,H,W]" and row.description
    assert row.params_mnist1d == sum(parameter.numel() for parameter in model.parameters())
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.params_mnist1d = 0


def test_the_zoo_is_printed_from_rows_alone() -> None:
    out = Console(file=io.StringIO(), width=120)
    print_zoo(ROWS, json_out=False, out=out)
    lines = out.file.getvalue().splitlines()
    assert any("tiny" in line and "1,234,567" in line and "1-D [L]" in line for line in lines)


def test_the_zoo_as_json_keeps_its_keys_in_order() -> None:
    out = Console(file=io.StringIO(), width=120)
    print_zoo(ROWS, json_out=True, out=out)
    rows = json.loads(out.file.getvalue())
    assert [list(row) for row in rows] == [["name", "params_mnist1d", "fits", "description"]] * 2
    assert rows[0]["params_mnist1d"] == 1234567 and rows[0]["description"] == "a [bracketed] description"
