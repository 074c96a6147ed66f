"""How a problem with the data is said: one line that names the dataset and the item.

A bad example surfaces, if nothing checks it, as a model's failure (a crash in the loss,
a diverged run) long after loading, and every architecture is blamed for it. Said here,
it names what the user has to fix: ``data imagefolder:/x: item 17 (cat/a.png): cannot be
read: ...``."""

from __future__ import annotations

from alrao_cli.errors import AlraoUserError


class DataProblem(AlraoUserError):
    """A problem with the data, never a model's. Most are found when the data is loaded; an
    item read only while a run trains (a factory's own dataset, a large image folder) stops
    the study there, as a full disk does, rather than failing every architecture in turn."""


def data_problem(name: str, item: str | None, problem: str, hint: str | None = None) -> DataProblem:
    """The error for ``problem`` in the data source ``name``, at ``item`` (``"training item 3"``) if one is to blame."""
    where = f"{item}: " if item else ""
    return DataProblem(f"data {name}: {where}{problem}", hint=hint)
