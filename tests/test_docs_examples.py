"""The code in the docs runs as written."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def python_blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), flags=re.S)


def test_library_example_runs(capsys):
    example = python_blocks("library.md")[0]
    namespace: dict = {}
    exec(compile(example, "docs/library.md", "exec"), namespace)
    printed = capsys.readouterr().out
    assert printed.count("epoch") == 3
    assert set(namespace["checkpoint"]) == {"model", "optimizer"}
