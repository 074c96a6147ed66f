"""The built-in model zoo: plain ``nn.Module`` files, one per model family.

The files import nothing of alrao: read one, copy it, change it. This index is the only
place that knows them as a zoo: it registers each factory, with one line for
``alrao models`` and the example shapes it takes, as timm's ``models/__init__.py`` does.
Installed as ``alrao_cli.zoo``; a zoo file also works on its own as an ARCH
(``alrao screen models/resnet.py``). Keep a model's last operation an
``nn.Linear(d, num_classes)`` whose output ``forward`` returns as is: the layer Alrao
replaces.
"""

from __future__ import annotations

from alrao_cli.sources.registry import register_model

from . import cnn1d, mlp, mobilenet, recurrent, resnet, vgg

BOTH = ("sequence", "image")

register_model("1-D CNN: 3 Conv1d+BatchNorm blocks, global pooling", fits=("sequence",))(cnn1d.cnn1d)
register_model("multilayer perceptron: 3 hidden ReLU layers of 128 units", fits=BOTH)(mlp.mlp)
register_model("small MobileNetV2: depthwise-separable inverted residuals", fits=BOTH)(mobilenet.mobilenet_small)
register_model("LSTM over the steps of the input, last hidden state to the head", fits=BOTH)(recurrent.lstm)
register_model("GRU over the steps of the input, last hidden state to the head", fits=BOTH)(recurrent.gru)
register_model("small ResNet: 3 stages of residual blocks with BatchNorm", fits=BOTH)(resnet.resnet_small)
register_model("small VGG: 3 conv-conv-pool blocks with BatchNorm", fits=BOTH)(vgg.vgg_small)

__all__ = ["cnn1d", "mlp", "mobilenet", "recurrent", "resnet", "vgg"]
