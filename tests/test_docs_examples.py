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


def test_the_method_added_in_the_docs_registers_and_trains_through_the_real_loop():
    """docs/methods.md: one file and its registration make a method the plan and loop can run."""
    from alrao_cli.config.schema import build_config
    from alrao_cli.data.load import cached_data
    from alrao_cli.study.methods import METHODS, baseline_methods
    from alrao_cli.study.plan import plan_study
    from alrao_cli.study.train import train_run

    example = python_blocks("methods.md")[0]
    exec(compile(example, "docs/methods.md", "exec"), {})
    try:
        assert "nesterov-grid" in [method.baseline_option for method in baseline_methods()]
        config = build_config(
            None, {"archs": ["mlp"], "baselines": ["nesterov-grid"], "grid": [0.05], "subset": 128,
                   "steps": 3, "device": "cpu", "weight_decay": 1e-4},
        )
        spec = next(spec for spec in plan_study(config, "screen").runs if spec.method.name == "nesterov")
        assert (spec.method.lr, spec.method.options.weight_decay, spec.method.options.nesterov_momentum) == (0.05, 1e-4, 0.9)
        result = train_run(spec, cached_data(spec.data))
        assert result.status == "ok" and result.method_label == "Nesterov" and result.tuned_over_grid
    finally:
        METHODS.pop("nesterov", None)
