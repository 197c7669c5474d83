"""Pixel normalisation: the (mean, std) of [0, 1] RGB pixels. Which one each backbone's ImageNet weights expect is
in its entry of ``trspose.models.catalog.BACKBONES``."""

Normalization = tuple[tuple[float, ...], tuple[float, ...]]  # (mean, std) per RGB channel

IMAGENET: Normalization = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # torchvision / timm weights
HALF: Normalization = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # TensorFlow's (x - 127) / 128, as the Lite weights
