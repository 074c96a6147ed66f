"""`alrao init`: the example config is written where asked, or refused in one line (exit code 2)."""

from __future__ import annotations

import pytest

from alrao_cli.config.schema import StudyConfig, build_config
from alrao_cli.config.yaml_io import load_config_file
from support import invoke


def error_line(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    (line,) = result.output.splitlines()
    return line


def test_init_creates_missing_parent_folders(tmp_path):
    path = tmp_path / "not" / "yet" / "alrao.yaml"
    result = invoke("init", str(path))
    assert result.exit_code == 0, result.output
    assert build_config(load_config_file(path), {}) == StudyConfig()
    assert [entry.name for entry in path.parent.iterdir()] == ["alrao.yaml"]  # no temporary file left


@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
def test_init_refuses_a_folder_without_suggesting_force(tmp_path, force):
    folder = tmp_path / "configs"
    folder.mkdir()
    line = error_line(invoke("init", str(folder), *(["--force"] if force else [])))
    assert line.startswith(f"error: {folder} is a folder")
    assert str(folder / "alrao.yaml") in line and "--force" not in line
    assert list(folder.iterdir()) == []


def test_init_refuses_a_file_on_the_way(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("kept")
    line = error_line(invoke("init", str(a_file / "sub" / "alrao.yaml")))
    assert line.startswith(f"error: cannot write {a_file / 'sub' / 'alrao.yaml'}: {a_file} is a file, not a folder")
    assert a_file.read_text() == "kept"


def test_init_refuses_an_existing_file_unless_forced(tmp_path):
    path = tmp_path / "alrao.yaml"
    path.write_text("mine\n")
    line = error_line(invoke("init", str(path)))
    assert line == f"error: {path} already exists (pass --force to overwrite it)"
    assert path.read_text() == "mine\n"
    assert invoke("init", str(path), "--force").exit_code == 0
    assert build_config(load_config_file(path), {}) == StudyConfig()


def test_init_into_a_read_only_folder_is_one_line(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        probe = folder / "probe"
        try:
            probe.write_text("")
        except PermissionError:
            pass
        else:
            pytest.skip("this user can write into a read-only folder (root)")
        line = error_line(invoke("init", str(folder / "alrao.yaml")))
        assert line.startswith(f"error: cannot write {folder / 'alrao.yaml'}: Permission denied")
    finally:
        folder.chmod(0o755)
