"""Config files: reading a user's YAML strictly, writing a run's ``config.yaml``, and the
commented example ``alrao init`` writes.

YAML is read with a safe loader that also refuses a key given twice (plain YAML keeps
the last silently); the values are checked by :func:`~alrao_cli.config.schema.build_config`."""

from __future__ import annotations

from pathlib import Path
from typing import Any
import yaml
from alrao_cli.errors import AlraoUserError
from alrao_cli.util.files import write_text_atomic
from alrao_cli.config.schema import DEFAULTS, EXAMPLE_SECTIONS, StudyConfig, config_to_dict


class _RepeatedKeyError(yaml.constructor.ConstructorError):
    """A key given twice in one mapping; kept apart to hint "keep one", not "fix the syntax"."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice, which plain YAML silently resolves to the last."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = self.construct_object(key_node)
            if key in seen:
                raise _RepeatedKeyError(
                    "while reading a mapping", node.start_mark, f"found the key {key!r} twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_config_file(path: Path) -> dict[str, Any]:
    """The raw option mapping of a YAML file; :func:`build_config` checks the values."""
    path = Path(path)
    hint = f"write an example with: alrao init {path}"
    if not path.is_file():
        problem = "is a folder" if path.is_dir() else "not found"
        raise AlraoUserError(f"config file {path} {problem}", hint=hint)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise AlraoUserError(
            f"config file {path} could not be read: {error}", hint="check its permissions and that it is UTF-8 text"
        ) from None
    try:
        values = yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        place = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        hint = (
            "keep only one of them"
            if isinstance(error, _RepeatedKeyError)
            else "check the indentation and that every option reads `key: value`"
        )
        raise AlraoUserError(f"invalid YAML in {place}: {error.problem or error}", hint=hint) from None
    except yaml.YAMLError as error:
        raise AlraoUserError(f"invalid YAML in {path}: {error}", hint="check the file is YAML text") from None
    except RecursionError:  # PyYAML recurses once per level: a few hundred nested lists are enough
        raise AlraoUserError(
            f"invalid YAML in {path}: nested too deeply", hint="no option nests more than a few levels"
        ) from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise AlraoUserError(
            f"config file {path} must hold a mapping of `option: value` lines, got a {type(values).__name__}",
            hint=hint,
        )
    return values


def dump_config_yaml(config: StudyConfig) -> str:
    """The ``config.yaml`` of a run directory: the full resolved config, loadable with ``--config``."""
    header = "# alrao: the resolved options of this run (every option, defaults included)\n"
    return header + yaml.safe_dump(config_to_dict(config), sort_keys=False, default_flow_style=None, width=1000)


_HEADS_EXAMPLE = """\
# The output layer of an architecture, by its qualified name, where alrao cannot find it
# (it takes the last nn.Linear with num_classes outputs); "*" applies to every ARCH.
# For example:
#   heads:
#     my_models.py:Net: classifier.3
"""


_MODEL_KWARGS_EXAMPLE = """\
# Extra keyword arguments for an architecture's constructor, keyed by the ARCH as written
# above. For example:
#   model_kwargs:
#     mlp: {width: 256, depth: 2}
#     my_models.py:Net: {dropout: 0.1}
"""


def example_config_yaml() -> str:
    """The commented file ``alrao init`` writes: every option at its default, one line of why.

    Values are rendered by YAML itself, one line per option, so that they read back exactly.
    """
    rendered = yaml.safe_dump(config_to_dict(DEFAULTS), sort_keys=False, default_flow_style=None, width=1000)
    line_of = {line.split(":", 1)[0]: line for line in rendered.splitlines()}
    lines = [
        "# alrao configuration: every option at its default.",
        "# Use it with: alrao screen --config FILE (flags on the command line override it).",
        "# Keys may be written with dashes or underscores (lr-min or lr_min).",
    ]
    for title, options in EXAMPLE_SECTIONS:
        lines += ["", f"# --- {title} ---"]
        for name, comment in options:
            lines += [f"# {comment}", line_of[name]]
    return (
        "\n".join(lines) + "\n\n" + _MODEL_KWARGS_EXAMPLE + line_of["model_kwargs"] + "\n\n"
        + _HEADS_EXAMPLE + line_of["heads"] + "\n"
    )


def write_example_config(path: Path, *, force: bool = False) -> None:
    """Write :func:`example_config_yaml` to ``path`` atomically, creating missing parent
    folders (as ``--junit-xml`` does).

    A folder at ``path``, a file where a parent folder should be, an existing file
    without ``force`` or a place that cannot be written is one :class:`AlraoUserError`.
    """
    try:
        if path.is_dir():
            raise AlraoUserError(
                f"{path} is a folder, not a config file", hint=f"name a file, e.g. alrao init {path / 'alrao.yaml'}"
            )
        if path.exists() and not force:
            raise AlraoUserError(f"{path} already exists", hint="pass --force to overwrite it")
        existing = next(folder for folder in path.absolute().parents if folder.exists())
        if not existing.is_dir():
            raise AlraoUserError(
                f"cannot write {path}: {existing} is a file, not a folder", hint="choose another path for the config"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, example_config_yaml())
    except OSError as error:
        raise AlraoUserError(
            f"cannot write {path}: {error.strerror or error}", hint="choose another path, or check the folder's permissions"
        ) from None
