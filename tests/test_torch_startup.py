"""The study commands keep torch._dynamo out of the process, and optimizers work as before."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import io, sys
import torch
from torch import nn
from alrao_cli.study.torch_startup import skip_dynamo_import_for_optimizers
patched = skip_dynamo_import_for_optimizers()
from alrao_cli.alrao import AlraoModel, AlraoSGD, alrao_step
torch.manual_seed(0)
model = AlraoModel(nn.Sequential(nn.Linear(40, 16), nn.ReLU(), nn.Linear(16, 10)), 10, example_input=torch.randn(2, 40))
optimizer = AlraoSGD(model, momentum=0.5)
x, y = torch.randn(8, 40), torch.randint(0, 10, (8,))
losses = [alrao_step(model, optimizer, x, y) for _ in range(3)]
buffer = io.BytesIO()
torch.save(optimizer.state_dict(), buffer)
buffer.seek(0)
optimizer.load_state_dict(torch.load(buffer, weights_only=True))
print(patched, "torch._dynamo" in sys.modules, repr(losses))
"""


def run(script: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    return done.stdout.split(maxsplit=2)


def test_an_alrao_run_never_imports_dynamo_and_trains_to_the_same_numbers():
    patched, imported, losses = run(SCRIPT)
    unpatched, imported_without, losses_without = run(SCRIPT.replace("patched = skip_dynamo_import_for_optimizers()", "patched = False"))
    assert (patched, imported) == ("True", "False")
    assert (unpatched, imported_without) == ("False", "True")  # what the patch saves: torch imports it on the first add_param_group
    assert losses == losses_without


FIRST_STEP_SCRIPT = """
import sys
import torch
from torch import nn
from alrao_cli.alrao import AlraoModel, AlraoSGD
from alrao_cli.study.torch_startup import import_what_the_first_step_imports, skip_dynamo_import_for_optimizers
skip_dynamo_import_for_optimizers()
model = AlraoModel(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)), 3, example_input=torch.randn(2, 4))
alrao = import_what_the_first_step_imports(type(AlraoSGD(model)))
before = "torch._dynamo" in sys.modules
sgd = import_what_the_first_step_imports(type(torch.optim.SGD(nn.Linear(4, 3).parameters(), lr=0.1)))
print(alrao, before, sgd, "torch._dynamo" in sys.modules)
"""

# Through the real screen: what the first SGD step imports is in sys.modules by the time
# the run's clock starts (before_training is called just after it starts).
RUN_CLOCK_SCRIPT = """
import sys
from typer.testing import CliRunner
from alrao_cli.cli.app import app
from alrao_cli.study.methods.base import TorchOptimizerLearner
seen = []
TorchOptimizerLearner.before_training = lambda self, save: seen.append("torch._dynamo" in sys.modules)
result = CliRunner().invoke(app, ["screen", "mlp", "--method", "sgd", "--grid", "0.1", "--subset", "64", "--steps", "1",
                                  "--no-plots", "--quiet", "--device", "cpu", "--out", sys.argv[1]])
print(result.exit_code, seen)
"""


def test_a_torch_optimizers_first_step_imports_are_made_before_the_runs_clock_starts(tmp_path):
    assert " ".join(run(FIRST_STEP_SCRIPT)).split() == ["False", "False", "True", "True"]  # Alrao's step imports nothing; SGD's does
    done = subprocess.run([sys.executable, "-c", RUN_CLOCK_SCRIPT, str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.split() == ["0", "[True]"], done.stderr



# alrao check's train item steps torch.optim.Adam: what that step imports is imported before
# the first architecture's clock starts, so that its times are its own.
CHECK_SCRIPT = """
import sys
from typer.testing import CliRunner
import alrao_cli.study.check as check
from alrao_cli.cli.app import app
seen, original = [], check.check_architecture
def spied(*args, **kwargs):
    seen.append("torch._dynamo" in sys.modules)
    return original(*args, **kwargs)
check.check_architecture = spied
result = CliRunner().invoke(app, ["check", "mlp", "cnn1d"])
print(result.exit_code, seen)
"""


def test_alrao_check_imports_what_adams_first_step_imports_before_any_architectures_clock():
    assert " ".join(run(CHECK_SCRIPT)).strip() == "0 [True, True]"
