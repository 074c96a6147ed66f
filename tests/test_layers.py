"""The packages depend on each other one way, down the layers (docs/architecture.md).

Read from the modules' own import statements (top-level and inside functions alike; a
block under ``if TYPE_CHECKING:`` only names types and is skipped), so that a shortcut
across layers fails here the day it is written rather than the day someone tries to run
a report without torch or to move the executor to another machine.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "alrao_cli"

# Lower layers never import higher ones; a package may import its own layer's peers only
# where a rule below says so.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "util"),
    ("alrao", "optimizers", "learned", "config"),
    ("data", "sources", "results", "zoo", "registry"),
    ("study",),
    ("report",),
    ("cli", "__main__"),
)
LAYER_OF = {package: level for level, packages in enumerate(LAYERS) for package in packages}

# (importer prefix, imported prefix, why it is forbidden although the layers would allow it)
FORBIDDEN = (
    ("alrao_cli.config", "alrao_cli.study", "config knows no methods: the plan checks method names"),
    ("alrao_cli.results", "alrao_cli.study", "results are plain records: a report needs no training code"),
    ("alrao_cli.report", "alrao_cli.study.methods", "a report shows any saved run, registered here or not"),
    ("alrao_cli.report", "alrao_cli.sources.build", "presentation code does not build models"),
    ("alrao_cli.sources.registry", "alrao_cli.alrao", "the registry knows models, not the method"),
    ("alrao_cli.sources", "alrao_cli.zoo", "the zoo's index registers itself: imported by name, never by import"),
    ("alrao_cli.study.plan", "alrao_cli.study.attempt", "planning does not reach into how runs are executed"),
    ("alrao_cli.study.plan", "alrao_cli.study.train", "planning does not reach into the training loop"),
    ("alrao_cli.alrao", "alrao_cli.config", "the method is usable alone, without the tool"),
    ("alrao_cli.alrao", "alrao_cli.util", "the method is usable alone, without the tool"),
)

# Modules that must import without torch (checked in a fresh interpreter).
TORCH_FREE = (
    "alrao_cli.study.spec",
    "alrao_cli.config.schema",
    "alrao_cli.config.yaml_io",
    "alrao_cli.data.spec",
    "alrao_cli.results.records",
    "alrao_cli.results.ranking",
    "alrao_cli.cli.app",
)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports_of(path: Path) -> list[str]:
    """Every alrao module ``path`` imports, absolute, outside ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    skipped = _type_checking_lines(tree)
    package = installed_name(path) if path.name == "__init__.py" else installed_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found += [f"{base}.{alias.name}" if base == "alrao_cli" or not node.module else base for alias in node.names]
    return [name for name in found if name == "alrao_cli" or name.startswith("alrao_cli.")]


def source_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py")) + sorted((ROOT / "models").glob("*.py"))


def installed_name(path: Path) -> str:
    """The module name a file has once installed: the top-level models/ is alrao_cli.zoo."""
    name = module_name(path)
    return "alrao_cli.zoo" + name[len("models"):] if name.split(".")[0] == "models" else name


def top_package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


EDGES = [(installed_name(path), imported) for path in source_files() for imported in imports_of(path)]


def test_the_scan_sees_the_imports_it_judges():
    """The checks below are only as good as the scan: it must see lazy and relative imports too."""
    edges = set(EDGES)
    assert ("alrao_cli.study.plan", "alrao_cli.config.schema") in edges
    assert ("alrao_cli.zoo", "alrao_cli.zoo.mlp") in edges  # `from . import mlp` in models/__init__.py
    assert any(importer.startswith("alrao_cli.cli.") and imported.startswith("alrao_cli.study") for importer, imported in edges)


def violations(edges: list[tuple[str, str]]) -> list[str]:
    found = []
    for importer, imported in edges:
        low, high = top_package(imported), top_package(importer)
        if low and low != high and LAYER_OF[low] > LAYER_OF[high]:
            found.append(f"{importer} (layer {LAYER_OF[high]}) imports {imported} (layer {LAYER_OF[low]})")
        found += [
            f"{importer} imports {imported}: {why}"
            for from_prefix, to_prefix, why in FORBIDDEN
            if importer.startswith(from_prefix) and imported.startswith(to_prefix)
        ]
    return found


def test_imports_go_down_the_layers():
    assert violations(EDGES) == []


@pytest.mark.parametrize(
    "edge",
    [("alrao_cli.config.schema", "alrao_cli.study.methods"), ("alrao_cli.data.load", "alrao_cli.report.tables"),
     ("alrao_cli.report.console", "alrao_cli.sources.build"), ("alrao_cli.study.plan", "alrao_cli.study.attempt")],
    ids=["config-to-methods", "upward", "presentation-builds-models", "plan-to-runner"],
)
def test_a_shortcut_across_layers_would_be_caught(edge):
    assert violations([edge]) != []


def test_every_package_folder_is_a_layer():
    folders = {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").exists()}
    modules = {path.stem for path in PACKAGE.glob("*.py") if path.stem not in ("__init__", "__main__")}
    assert folders | modules | {"zoo"} <= set(LAYER_OF) | {"__pycache__"}


def test_zoo_files_import_nothing_of_the_tool():
    """A zoo file is a plain model file a user can read and copy; only the index registers."""
    for path in sorted((ROOT / "models").glob("*.py")):
        if path.name != "__init__.py":
            outside = [name for name in imports_of(path) if not name.startswith("alrao_cli.zoo")]
            assert outside == [], path.name


def test_the_package_list_names_every_package_folder():
    """pyproject.toml lists packages by hand (the zoo is mapped in): none may be forgotten."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    folders = {module_name(init.parent / "__init__.py") for init in PACKAGE.rglob("__init__.py")}
    assert folders | {"alrao_cli.zoo"} == listed
    assert config["package-dir"] == {"alrao_cli.zoo": "models"}


def test_spec_config_results_and_the_command_line_import_without_torch():
    code = (
        "import sys\n"
        f"for name in {TORCH_FREE!r}:\n"
        "    __import__(name)\n"
        "heavy = sorted(m for m in ('torch', 'alrao_cli.study.methods', 'alrao_cli.study.train') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == ""
