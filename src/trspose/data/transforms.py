"""Top-down crop transforms: box -> centre/scale -> random affine -> crop -> photometric steps.

One :class:`TopDownTransform` serves evaluation (``augment=None``: the padded box, no randomness),
labelled training (:class:`AugmentConfig`, HRNet's recipe) and the strong view of unlabelled
images (:class:`StrongAugmentConfig`: larger affine, colour, blur, noise, cutout). Every random
draw comes from the ``rng`` passed in, so a sample is reproducible from its seed.

The crop is sampled with ``cv2.warpAffine`` (bilinear); pixels outside the image are 0 (black),
as in HRNet. A flip mirrors the crop (``x -> W - 1 - x``, exactly ``np.fliplr``) after the affine,
so ``crop_to_image`` stays exact, and the keypoint channels swap left/right.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from trspose.data.coco import PersonInstance
from trspose.data.geometry import (
    affine_points,
    box_to_center_scale,
    compose_affine,
    get_affine_transform,
    horizontal_flip_matrix,
    invert_affine,
)
from trspose.data.keypoints import KeypointSpec

LOWER_BODY_WORDS = ("hip", "knee", "ankle", "pelvis")
BOX_PADDING = 1.25  # HRNet / SimpleBaseline context around the person box
HALF_BODY_PADDING = 1.5  # HRNet's half-body box padding


@dataclass
class AugmentConfig:
    """Geometric augmentation of a labelled (or weak) top-down crop; defaults are HRNet's COCO values."""

    scale_factor: float = 0.30  # box scale x clip(1 + N(0, f), 1 - f, 1 + f)
    rotation_deg: float = 40.0  # rotation clip(N(0, r), -2r, 2r) degrees
    rotation_prob: float = 0.6  # chance of rotating at all
    flip_prob: float = 0.5  # chance of a horizontal flip
    half_body_prob: float = 0.3  # chance of cropping only the upper or lower body
    half_body_min_kpts: int = 8  # half-body needs more than this many labelled keypoints
    shift_factor: float = 0.0  # centre shift U(-f, f) x padded box size, per axis
    color_jitter: float = 0.0  # brightness/contrast/saturation factors U(1 - j, 1 + j)

    def __post_init__(self) -> None:
        for name in ("rotation_prob", "flip_prob", "half_body_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.scale_factor < 1.0:
            raise ValueError(f"scale_factor must be in [0, 1), got {self.scale_factor}")
        if self.rotation_deg < 0 or self.shift_factor < 0 or not 0.0 <= self.color_jitter < 1.0:
            raise ValueError("rotation_deg and shift_factor must be >= 0 and color_jitter in [0, 1)")


@dataclass
class StrongAugmentConfig(AugmentConfig):
    """The student's strong view of an unlabelled image [ours]: larger affine plus appearance noise."""

    scale_factor: float = 0.35
    rotation_deg: float = 45.0
    rotation_prob: float = 0.8
    half_body_prob: float = 0.0
    color_jitter: float = 0.4
    blur_prob: float = 0.5  # chance of a Gaussian blur
    blur_sigma: tuple[float, float] = (0.1, 2.0)  # blur sigma range, crop px
    noise_prob: float = 0.5  # chance of additive Gaussian noise
    noise_std: float = 10.0  # noise std in 0-255 intensity units
    cutout_prob: float = 0.5  # chance of cutting out patches
    cutout_count: int = 2  # patches per crop when cutting out
    cutout_size: float = 0.2  # patch side as a fraction of the crop's shorter side

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("blur_prob", "noise_prob", "cutout_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.cutout_count < 0 or not 0.0 <= self.cutout_size <= 1.0:
            raise ValueError("cutout_count must be >= 0 and cutout_size in [0, 1]")
        if not 0.0 < self.blur_sigma[0] <= self.blur_sigma[1]:
            raise ValueError(
                f"blur_sigma must be [low, high] with 0 < low <= high, got {list(self.blur_sigma)}"
            )
        if self.noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {self.noise_std}")


class CropResult(NamedTuple):
    """What a top-down transform returns (a tuple: ``crop, keypoints, crop_to_image, flipped = ...``)."""

    crop: np.ndarray  # (H, W, 3) uint8 RGB
    keypoints: np.ndarray  # (K, 3) float32 crop px; v = 0 outside the crop
    crop_to_image: np.ndarray  # (2, 3) float32 crop px -> original image px
    flipped: bool


def lower_body_mask(spec: KeypointSpec) -> np.ndarray:
    """(K,) bool: hips, knees, ankles (and pelvis); HRNet's lower-body ids for COCO and MPII."""
    return np.array([any(word in name for word in LOWER_BODY_WORDS) for name in spec.names])


def half_body_center_scale(
    keypoints: np.ndarray, lower: np.ndarray, aspect_ratio: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray] | None:
    """HRNet's half-body box: the labelled upper- or lower-body keypoints, padded 1.5x; None if too few."""
    visible = keypoints[:, 2] > 0
    upper_pts, lower_pts = keypoints[visible & ~lower, :2], keypoints[visible & lower, :2]
    if rng.random() < 0.5 and len(upper_pts) > 2:
        selected = upper_pts
    else:
        selected = lower_pts if len(lower_pts) > 2 else upper_pts
    if len(selected) < 2:
        return None
    top_left, bottom_right = selected.min(axis=0), selected.max(axis=0)
    box = np.concatenate([top_left, bottom_right - top_left])
    _, scale = box_to_center_scale(box, aspect_ratio, padding=HALF_BODY_PADDING)
    return selected.mean(axis=0).astype(np.float32), scale


def transform_keypoints(
    keypoints: np.ndarray,
    image_to_crop: np.ndarray,
    input_size: tuple[int, int],
    flip_index: np.ndarray | None,
) -> np.ndarray:
    """Keypoints (K, 3) image px -> crop px; channels permuted when flipped; v = 0 outside the crop."""
    height, width = input_size
    out = np.array(keypoints, dtype=np.float32, copy=True)
    out[:, :2] = affine_points(out[:, :2], image_to_crop)
    if flip_index is not None:
        out = out[flip_index]
    outside = (out[:, 0] < 0) | (out[:, 0] >= width) | (out[:, 1] < 0) | (out[:, 1] >= height)
    out[outside, 2] = 0.0
    return out


def warp_image(image: np.ndarray, image_to_crop: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """The crop (H, W, 3) uint8 sampled bilinearly; outside the image is black (0)."""
    height, width = input_size
    return cv2.warpAffine(
        image,
        image_to_crop,
        (width, height),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def jitter_color(crop: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast and saturation factors drawn from U(1 - strength, 1 + strength)."""
    brightness, contrast, saturation = rng.uniform(1 - strength, 1 + strength, size=3)
    image = crop.astype(np.float32) * brightness
    gray = image @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # (H, W)
    image = (image - gray.mean()) * contrast + gray.mean()
    gray = (image @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
    image = gray + (image - gray) * saturation
    return np.clip(image, 0, 255).astype(np.uint8)


def cut_out(
    crop: np.ndarray, centers: np.ndarray, count: int, size: float, rng: np.random.Generator
) -> np.ndarray:
    """Black out ``count`` squares of side ``size`` x shorter crop side, centred on random picks of ``centers``.

    With no centres (no keypoints known), the squares go to uniform random places in the crop.
    """
    height, width = crop.shape[:2]
    half = max(1, int(round(size * min(height, width) / 2)))
    out = crop.copy()
    for _ in range(count):
        if len(centers):
            cx, cy = centers[rng.integers(len(centers))]
        else:
            cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        x0, y0 = int(round(cx)) - half, int(round(cy)) - half
        out[max(0, y0) : max(0, y0 + 2 * half), max(0, x0) : max(0, x0 + 2 * half)] = 0
    return out


def degrade(
    crop: np.ndarray, config: StrongAugmentConfig, cutout_centers: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """The strong view's appearance steps, in a fixed order: blur, noise, cutout."""
    if rng.random() < config.blur_prob:
        sigma = rng.uniform(*config.blur_sigma)
        crop = cv2.GaussianBlur(crop, (0, 0), sigmaX=sigma, sigmaY=sigma)
    if rng.random() < config.noise_prob:
        noise = rng.normal(0.0, config.noise_std, size=crop.shape)
        crop = np.clip(crop.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    if rng.random() < config.cutout_prob and config.cutout_count > 0:
        crop = cut_out(crop, cutout_centers, config.cutout_count, config.cutout_size, rng)
    return crop


class TopDownTransform:
    """Crop one person to ``input_size`` (height, width), with optional random augmentation."""

    def __init__(
        self, input_size: Sequence[int], spec: KeypointSpec, augment: AugmentConfig | None = None
    ) -> None:
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.spec = spec
        self.augment = augment
        self.flip_index = spec.flip_index()
        self.lower_body = lower_body_mask(spec)
        self.aspect_ratio = self.input_size[0] / self.input_size[1]  # height / width

    def sample_center_scale_rotation(
        self, instance: PersonInstance, rng: np.random.Generator | None
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """Box -> centre/scale, then HRNet's half-body, scale, shift and rotation draws (none without ``rng``)."""
        center, scale = box_to_center_scale(instance.box, self.aspect_ratio, padding=BOX_PADDING)
        config = self.augment
        if config is None or rng is None:
            return center, scale, 0.0
        labeled = int((instance.keypoints[:, 2] > 0).sum())
        if labeled > config.half_body_min_kpts and rng.random() < config.half_body_prob:
            half_body = half_body_center_scale(instance.keypoints, self.lower_body, self.aspect_ratio, rng)
            if half_body is not None:
                center, scale = half_body
        factor = config.scale_factor
        scale = scale * np.clip(rng.normal() * factor + 1.0, 1.0 - factor, 1.0 + factor)
        if config.shift_factor > 0:
            center = center + rng.uniform(-config.shift_factor, config.shift_factor, size=2) * scale
        rotation = 0.0
        if rng.random() < config.rotation_prob:
            rotation = float(
                np.clip(rng.normal() * config.rotation_deg, -2 * config.rotation_deg, 2 * config.rotation_deg)
            )
        return center.astype(np.float32), scale.astype(np.float32), rotation

    def __call__(
        self,
        image_rgb: np.ndarray,
        instance: PersonInstance,
        rng: np.random.Generator | None,
        cutout_points: np.ndarray | None = None,
    ) -> CropResult:
        """Crop, keypoints in crop px, the crop -> image matrix, and whether the crop is mirrored.

        ``rng`` may be None for evaluation (``augment=None`` draws nothing).

        ``cutout_points`` (N, 2) image px are where strong-view cutout patches go; by default the
        labelled keypoints in the crop, or random places when there are none.
        """
        center, scale, rotation = self.sample_center_scale_rotation(instance, rng)
        image_to_crop = get_affine_transform(center, scale, rotation, self.input_size)
        flipped = self.augment is not None and rng is not None and rng.random() < self.augment.flip_prob
        if flipped:
            image_to_crop = compose_affine(horizontal_flip_matrix(self.input_size[1]), image_to_crop)
        crop = warp_image(image_rgb, image_to_crop, self.input_size)  # (H, W, 3)
        keypoints = transform_keypoints(
            instance.keypoints, image_to_crop, self.input_size, self.flip_index if flipped else None
        )
        config = self.augment
        if config is not None and rng is not None and config.color_jitter > 0:
            crop = jitter_color(crop, config.color_jitter, rng)
        if isinstance(config, StrongAugmentConfig) and rng is not None:
            if cutout_points is not None:
                centers = affine_points(np.asarray(cutout_points)[:, :2], image_to_crop)
            else:
                centers = keypoints[keypoints[:, 2] > 0, :2]
            crop = degrade(crop, config, centers, rng)
        return CropResult(crop, keypoints, invert_affine(image_to_crop), bool(flipped))
