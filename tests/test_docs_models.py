"""The example model files of docs/models.md work as the page says.

Every ```python block of the page whose first line is ``# file: NAME.py`` is written to
``tmp_path/NAME.py``; each model the file defines (as ``alrao screen NAME.py`` would find
them) is built for MNIST-1D shapes (one example ``[40]``, 10 classes), must return
``[batch, 10]``, and must be wrapped by :class:`alrao_cli.AlraoModel` and take one Alrao
step. Each test gets its own ``tmp_path``, so module names never collide.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch

from alrao_cli import AlraoModel, AlraoSGD, alrao_step
from alrao_cli.sources.build import build_model
from alrao_cli.sources.arch import expand_arch

PAGE = Path(__file__).resolve().parents[1] / "docs" / "models.md"
FILE_MARK = re.compile(r"#\s*file:\s*(\S+\.py)\s*$")
MNIST1D_SHAPE = (40,)
NUM_CLASSES = 10
BATCH = 8


def example_files() -> list[tuple[str, str]]:
    """``(file name, source)`` of every python block that starts with ``# file: NAME.py``."""
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), flags=re.S)
    found = []
    for block in blocks:
        first_line = block.splitlines()[0] if block.strip() else ""
        match = FILE_MARK.match(first_line.strip())
        if match:
            found.append((match.group(1), block))
    return found


EXAMPLES = example_files()


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and stay fast when other processes load the CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_the_page_has_the_three_example_files():
    names = [name for name, _ in EXAMPLES]
    assert len(names) >= 3, f"docs/models.md should hold 3 example files, found {names}"
    assert len(set(names)) == len(names), f"two examples share a file name: {names}"


@pytest.mark.parametrize(("name", "source"), EXAMPLES, ids=[name for name, _ in EXAMPLES])
def test_example_file_builds_and_wraps(tmp_path, name, source):
    path = tmp_path / name
    path.write_text(source, encoding="utf-8")
    archs = expand_arch(str(path))
    assert archs, f"{name} defines no model"
    torch.manual_seed(0)
    x = torch.randn(BATCH, *MNIST1D_SHAPE)
    y = torch.randint(0, NUM_CLASSES, (BATCH,))
    for arch in archs:
        model = build_model(arch, NUM_CLASSES, MNIST1D_SHAPE)
        model.eval()
        with torch.no_grad():
            out = model(x)
        assert isinstance(out, torch.Tensor), f"{arch} returned {type(out).__name__}"
        assert tuple(out.shape) == (BATCH, NUM_CLASSES), f"{arch} gave {tuple(out.shape)}"

        wrapped = AlraoModel(model, NUM_CLASSES, seed=0)
        wrapped.train()
        loss = alrao_step(wrapped, AlraoSGD(wrapped), x, y)
        assert math.isfinite(loss), f"{arch}: Alrao loss {loss}"
        wrapped.eval()
        with torch.no_grad():
            log_probs = wrapped(x)
        assert tuple(log_probs.shape) == (BATCH, NUM_CLASSES)


def test_registering_file_names_both_models(tmp_path):
    """The page says a file that registers two models gives two ARCHs, in order."""
    registering = [(name, source) for name, source in EXAMPLES if "@register_model" in source]
    assert registering, "docs/models.md should show a file that registers models"
    name, source = registering[0]
    path = tmp_path / name
    path.write_text(source, encoding="utf-8")
    registered = re.findall(r"^@register_model\(.*\)[ \t]*\n(?:def|class) (\w+)", source, flags=re.M)
    assert [arch.rpartition(":")[2] for arch in expand_arch(str(path))] == registered
    assert len(registered) == 2


def test_the_zoo_table_of_the_page_is_what_alrao_models_prints():
    """Each zoo row of the page (name, parameters on MNIST-1D, fits) matches the registry."""
    from alrao_cli.sources.build import count_parameters
    from alrao_cli.sources.registry import list_zoo

    rows = re.findall(r"^\| `(\w+)` \| ([\d,]+) \| ([^|]+) \|", PAGE.read_text(encoding="utf-8"), flags=re.M)
    documented = {name: (int(params.replace(",", "")), fits.strip()) for name, params, fits in rows}
    actual = {
        entry.name: (count_parameters(build_model(entry.name, NUM_CLASSES, MNIST1D_SHAPE)), entry.fits_label())
        for entry in list_zoo()
    }
    assert documented == actual


def test_the_zoo_files_are_installed_with_the_package_and_work_by_path():
    """The page's `python -c` line finds the zoo's folder; a zoo file there is an ARCH by path."""
    import contextlib
    import io

    command = re.search(r'\$ python -c "(import alrao_cli\.zoo as zoo; print\(zoo\.__path__\[0\]\))"', PAGE.read_text())
    assert command, "docs/models.md should say how to find the zoo's files"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(command.group(1), {})  # what `python -c` runs, without starting a second interpreter
    folder = Path(printed.getvalue().strip())
    assert folder == Path(__file__).resolve().parents[1] / "models"
    assert expand_arch(str(folder / "resnet.py")) == [f"{folder / 'resnet.py'}:resnet_small"]
    model = build_model(f"{folder / 'resnet.py'}:resnet_small", NUM_CLASSES, MNIST1D_SHAPE)
    assert type(model) is type(build_model("resnet_small", NUM_CLASSES, MNIST1D_SHAPE))  # the zoo's own module


@pytest.mark.parametrize("name", ["resnet18", "vit_b_16", "efficientnet_b0"])
def test_torchvision_classifiers_named_on_the_page_are_accepted(name):
    assert expand_arch(f"torchvision:{name}") == [f"torchvision:{name}"]


@pytest.mark.parametrize("name", ["fasterrcnn_resnet50_fpn", "fcn_resnet50", "r3d_18", "raft_small"])
def test_torchvision_models_that_are_not_classifiers_are_refused(name):
    from alrao_cli.errors import AlraoUserError

    assert f"`{name}`" in PAGE.read_text()
    with pytest.raises(AlraoUserError, match=f"torchvision has no classification model '{name}'"):
        expand_arch(f"torchvision:{name}")
