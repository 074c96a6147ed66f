"""Helpers shared by several test files: model sources, generated data, result comparisons."""

from __future__ import annotations

import json
from pathlib import Path

# Its output layer is registered before a hidden layer that also has num_classes units:
# only a forward pass tells which Linear's output the model returns.
HEAD_FIRST_MODEL = """
class HeadFirst(nn.Module):
    def __init__(self, num_classes, input_shape):
        super().__init__()
        self.head = nn.Linear(num_classes, num_classes)
        self.body = nn.Linear(math.prod(input_shape), num_classes)

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))
"""

# Builds only with a `width` from the config's model_kwargs.
NEEDS_WIDTH_MODEL = """
class NeedsWidth(nn.Module):
    def __init__(self, num_classes, input_shape, width):
        super().__init__()
        self.body = nn.Linear(math.prod(input_shape), width)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))
"""


def write_files(folder: Path, files: dict[str, str]) -> Path:
    """Write each ``name: text`` of ``files`` into ``folder`` (created) and return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def two_colour_images(root: Path, per_class: int, size: int) -> Path:
    """An ImageFolder of two classes, red and blue squares, ``per_class`` PNGs each."""
    from PIL import Image

    for label, colour in enumerate([(200, 30, 30), (30, 30, 200)]):
        (root / f"class{label}").mkdir(parents=True)
        for index in range(per_class):
            Image.new("RGB", (size, size), colour).save(root / f"class{label}" / f"{index}.png")
    return root


def without_seconds(run: dict) -> dict:
    """A saved run with its wall-clock times taken out: what must be equal from run to run."""
    run = json.loads(json.dumps(run))
    run.pop("seconds")
    for record in run["history"]:
        record.pop("seconds")
    return run
