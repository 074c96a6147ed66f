"""The built-in model zoo: plain ``nn.Module`` files, one per model family.

Importing this package registers every zoo model (see :func:`alrao_cli.registry.list_zoo`).
Each file also works on its own as an ARCH: ``alrao screen alrao_cli/models/resnet.py``.
Copy one to start your own; keep its last operation an ``nn.Linear(d, num_classes)``
whose output ``forward`` returns as is, which is the layer Alrao replaces.
"""

from __future__ import annotations

from alrao_cli.models import cnn1d, mlp, mobilenet, recurrent, resnet, vgg

__all__ = ["cnn1d", "mlp", "mobilenet", "recurrent", "resnet", "vgg"]
