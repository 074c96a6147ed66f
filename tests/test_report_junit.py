"""The JUnit report is written through the one atomic writer: a CI step never reads half of it."""

from __future__ import annotations

import errno
import os
import xml.etree.ElementTree as ET

import pytest

from alrao_cli.errors import AlraoUserError
from alrao_cli.report.check import write_junit
from alrao_cli.study.check import ArchCheck, ItemResult

RESULTS = [
    ArchCheck("mlp", (ItemResult("build", "passed", 0.01, detail="1,234 parameters"),)),
    ArchCheck("broken.py:Net", (ItemResult("build", "failed", 0.02, reason="ImportError: no module named foo"),)),
]


def test_a_report_replaces_the_old_one_with_the_permissions_open_gives(tmp_path) -> None:
    path = tmp_path / "alrao.xml"
    path.write_text("old report")
    write_junit(path, RESULTS)
    assert [child.name for child in tmp_path.iterdir()] == ["alrao.xml"]
    suite = ET.parse(path).getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not tempfile's 0600


def test_a_full_disk_leaves_the_old_report_and_no_temporary_file(tmp_path, monkeypatch) -> None:
    path = tmp_path / "alrao.xml"
    path.write_text("old report")

    def full_disk(*args, **kwargs) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ET.ElementTree, "write", full_disk)
    with pytest.raises(AlraoUserError, match=f"^cannot write the JUnit report {path}: No space left on device"):
        write_junit(path, RESULTS)
    assert [child.name for child in tmp_path.iterdir()] == ["alrao.xml"]
    assert path.read_text() == "old report"


def test_a_relative_path_in_a_new_folder_is_written(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_junit("reports/alrao.xml", RESULTS)
    assert ET.parse(tmp_path / "reports" / "alrao.xml").getroot().tag == "testsuites"
