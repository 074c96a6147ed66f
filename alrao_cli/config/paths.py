"""Where the files a config names are: relative paths are read from the config's ``workdir``."""

from __future__ import annotations

import os
from dataclasses import replace
from alrao_cli.config.schema import StudyConfig


def anchored(config: StudyConfig) -> StudyConfig:
    """The config with ``workdir`` pinned to the current folder unless it names one.

    A run directory's ``config.yaml`` is read again by ``--resume``, possibly from another
    folder: with ``workdir`` saved in it, the model files and data it names keep pointing
    where they did, while tables and run keys keep the paths as the user wrote them.
    """
    return config if config.workdir else replace(config, workdir=os.getcwd())


def resolve_path(config: StudyConfig, path: str) -> str:
    """A file or folder the config names, absolute (a relative one is read from ``workdir``)."""
    return os.path.normpath(os.path.join(config.workdir or os.getcwd(), os.path.expanduser(path)))


def resolve_arch(config: StudyConfig, arch: str) -> str:
    """``file.py`` and ``file.py:Name`` with an absolute path; zoo and torchvision names as they are."""
    if arch.endswith(".py"):
        return resolve_path(config, arch)
    path, colon, name = arch.rpartition(":")
    return f"{resolve_path(config, path)}:{name}" if colon and path.endswith(".py") else arch


def resolve_data_source(config: StudyConfig) -> str:
    """The ``data`` option with the path of ``imagefolder:PATH`` / ``python:FILE.py:FACTORY`` absolute."""
    source = config.data
    prefix, colon, rest = source.partition(":")
    if colon and prefix == "imagefolder" and rest:
        return f"imagefolder:{resolve_path(config, rest)}"
    if colon and prefix == "python":
        file, colon, factory = rest.rpartition(":")
        return f"python:{resolve_path(config, file)}:{factory}" if colon and file else source
    return source
