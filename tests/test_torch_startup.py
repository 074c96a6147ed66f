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
