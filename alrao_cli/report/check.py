"""Show ``alrao check`` results: a table for people, JSON for scripts, JUnit XML for CI.

CI systems (GitHub Actions test reporters, GitLab, Jenkins) read JUnit XML and show each
failing test with its message; one test case per architecture and item makes "vgg_small /
serialize" show up as its own red line, with the reason as its message.

Failure and note lines hold user text (paths, class names, error messages): they are
rich ``Text``, never markup, so that ``[x]`` stays ``[x]`` and ``:B:`` does not become an
emoji, and they are printed without wrapping: in a CI log one failure is one line.
"""

from __future__ import annotations

import re
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

from alrao_cli.errors import AlraoUserError
from alrao_cli.util.files import write_atomic_with

if TYPE_CHECKING:  # the check's records live beside its torch code: imported where used
    from alrao_cli.study.check import ArchCheck, ItemResult

JUNIT_SUITE_NAME = "alrao check"
_MARKS = {"passed": ("✓", "green"), "failed": ("✗", "bold red"), "skipped": ("–", "dim")}
# Characters XML 1.0 cannot hold, even escaped (a model's error message may contain them).
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_UNWRITABLE_HINT = "give a file path in a folder you can write to, e.g. reports/alrao.xml"


def _arch_seconds(result: ArchCheck) -> float:
    return sum(item.seconds for item in result.items)


def check_table(results: list[ArchCheck], total_seconds: float) -> Table:
    """One row per architecture: ✓ / ✗ / – per item, its seconds; the total time in the caption."""
    from alrao_cli.study.check import CHECK_ITEMS

    passed = sum(result.passed for result in results)
    caption = (
        f"{len(results)} architecture(s) checked in {total_seconds:.1f} s: "
        f"{passed} passed, {len(results) - passed} failed"
    )
    table = Table(title="alrao check", caption=caption)
    table.add_column("architecture", overflow="fold")
    for name in CHECK_ITEMS:
        table.add_column(name, justify="center")
    table.add_column("seconds", justify="right")
    for result in results:
        marks = {item.name: Text(*_MARKS[item.status]) for item in result.items}
        table.add_row(
            Text(result.arch),  # a Text, so that brackets in a path are not read as markup
            *(marks.get(name, Text("")) for name in CHECK_ITEMS),
            f"{_arch_seconds(result):.2f}",
        )
    return table


def failure_lines(results: list[ArchCheck]) -> list[str]:
    """One line per failed item: ``arch: item: reason``."""
    return [
        f"{result.arch}: {item.name}: {item.reason}"
        for result in results
        for item in result.items
        if item.status == "failed"
    ]


def note_lines(results: list[ArchCheck]) -> list[str]:
    """One line per passed item with a note: ``arch: item: note``."""
    return [f"{result.arch}: {item.name}: {item.note}" for result in results for item in result.items if item.note]


def message_lines(results: list[ArchCheck]) -> list[Text]:
    """What follows the table: the notes, then the failures (last, where a CI log ends)."""
    notes = [Text.assemble(("note: ", "yellow"), line) for line in note_lines(results)]
    return notes + [Text.assemble(("✗ ", "red"), line) for line in failure_lines(results)]


def check_json(results: list[ArchCheck], total_seconds: float) -> dict[str, Any]:
    """The results as plain data, in a stable layout scripts can rely on."""
    return {
        "passed": all(result.passed for result in results),
        "seconds": round(total_seconds, 3),
        "architectures": [
            {
                "arch": result.arch,
                "passed": result.passed,
                "items": [_item_json(item) for item in result.items],
            }
            for result in results
        ],
    }


def _item_json(item: ItemResult) -> dict[str, Any]:
    return {
        "name": item.name,
        "status": item.status,
        "seconds": round(item.seconds, 3),
        "reason": item.reason,
        "detail": item.detail,
        "note": item.note,
    }


def check_junit_path(path: str | Path) -> None:
    """Fail now, before any check runs, if the report could not be written at ``path``.

    Creates the missing parent folders (as :func:`write_junit` would) and a throw-away
    file in them: a folder given as the path, a read-only place or a parent that is a
    file is one clear error, not a traceback after every check has run.
    """
    target = Path(path).absolute()
    if target.is_dir():
        raise AlraoUserError(f"the JUnit report path {path} is a folder", hint=_UNWRITABLE_HINT)
    existing = next(folder for folder in target.parents if folder.exists())
    if not existing.is_dir():
        raise AlraoUserError(
            f"cannot write the JUnit report {path}: {existing} is a file, not a folder", hint=_UNWRITABLE_HINT
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=target.parent):
            pass
    except OSError as error:
        raise _unwritable(path, error) from None


def _unwritable(path: str | Path, error: OSError) -> AlraoUserError:
    return AlraoUserError(f"cannot write the JUnit report {path}: {error.strerror or error}", hint=_UNWRITABLE_HINT)


def write_junit(path: str | Path, results: list[ArchCheck]) -> None:
    """Write the results as JUnit XML: one test case per architecture and item.

    Written through the one atomic writer (:func:`~alrao_cli.util.files.write_atomic_with`),
    so a CI step never reads half a report; missing parent folders are created. A path
    that cannot be written is an :class:`AlraoUserError` (call :func:`check_junit_path`
    first to learn it before the checks run).
    """
    target = Path(path)
    tree = ET.ElementTree(_junit_element(results))
    ET.indent(tree)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic_with(target, lambda handle: tree.write(handle, encoding="utf-8", xml_declaration=True))
    except OSError as error:
        raise _unwritable(path, error) from None


def _junit_element(results: list[ArchCheck]) -> ET.Element:
    items = [(result.arch, item) for result in results for item in result.items]
    counts = {
        "tests": str(len(items)),
        "failures": str(sum(item.status == "failed" for _, item in items)),
        "errors": "0",
        "skipped": str(sum(item.status == "skipped" for _, item in items)),
        "time": f"{sum(item.seconds for _, item in items):.3f}",
    }
    root = ET.Element("testsuites", {"name": JUNIT_SUITE_NAME, **counts})
    suite = ET.SubElement(root, "testsuite", {"name": JUNIT_SUITE_NAME, **counts})
    for arch, item in items:
        case = ET.SubElement(
            suite, "testcase", {"classname": _xml_text(arch), "name": item.name, "time": f"{item.seconds:.3f}"}
        )
        if item.status == "failed":
            reason = _xml_text(item.reason or "failed")
            failure = ET.SubElement(case, "failure", {"message": reason, "type": "AlraoCheckFailure"})
            failure.text = reason
        elif item.status == "skipped":
            ET.SubElement(case, "skipped", {"message": "an earlier item of this architecture failed"})
        elif item.detail:
            text = f"{item.detail}; note: {item.note}" if item.note else item.detail
            ET.SubElement(case, "system-out").text = _xml_text(text)
    return root


def _xml_text(text: str) -> str:
    return _NOT_XML.sub("?", text)
