"""Keypoint-Mix: paste patches around other people's keypoints onto this person's keypoints; joint cutout.

The targets are left unchanged, so a pasted patch (which looks like, say, someone's wrist) sits on this
person's elbow and the network must learn to tell the two apart from context. Applied to the student's
strong view (and optionally labelled crops). Locations are in input-crop pixels, (x, y).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch


@dataclass
class KeypointMixConfig:
    probability: float = 0.5
    """Probability that an image is mixed at all."""
    count: int = 3
    """Keypoints of the image that receive a pasted patch."""
    patch_size: int = 12
    """Side of the square patch, in input pixels."""
    source: Literal["batch", "swap"] = "batch"
    """'batch' (patches from other images of the batch) or 'swap' (this image's own left/right partner)."""


@dataclass
class JointCutoutConfig:
    probability: float = 0.0
    """Probability that an image gets its joints cut out (0: off; random cutout still happens in the data)."""
    count: int = 2
    """Keypoints of the image whose surrounding patch is erased."""
    patch_size: int = 12
    """Side of the square patch, in input pixels."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be in [0, 1]")
        if self.count < 0 or self.patch_size <= 0:
            raise ValueError("count must be >= 0 and patch_size > 0")


@dataclass
class PasteRecord:
    """Where each patch went: (image, x0, y0) of the destination and (source image, x0, y0) of the source."""

    destination: list[tuple[int, int, int]]
    source: list[tuple[int, int, int]]


def _corner(point: torch.Tensor, size: int, height: int, width: int) -> tuple[int, int]:
    """Top-left corner of a size x size patch centred on point, clamped inside the image."""
    x0 = int(round(float(point[0]) - size / 2))
    y0 = int(round(float(point[1]) - size / 2))
    return min(max(x0, 0), width - size), min(max(y0, 0), height - size)


def keypoint_mix(
    images: torch.Tensor,
    keypoints: torch.Tensor,
    valid: torch.Tensor,
    cfg: KeypointMixConfig,
    generator: torch.Generator,
    flip_index: torch.Tensor | None = None,
) -> tuple[torch.Tensor, PasteRecord]:
    """Return a mixed copy of ``images`` (B, 3, H, W) and where patches were pasted.

    keypoints: (B, K, 2) locations in the images (labels, or the teacher's pseudo-peaks warped into the view);
    valid: (B, K) bool, keypoints that may receive or give a patch.
    """
    out = images.clone()
    b, _, height, width = images.shape
    s = min(cfg.patch_size, height, width)
    record = PasteRecord([], [])
    for i, k in _chosen_keypoints(valid, cfg.probability, cfg.count, generator):
        source = _pick_source(i, k, keypoints, valid, cfg, generator, flip_index)
        if source is None:
            continue
        j, m = source
        dx, dy = _corner(keypoints[i, k], s, height, width)
        sx, sy = _corner(keypoints[j, m], s, height, width)
        out[i, :, dy : dy + s, dx : dx + s] = images[j, :, sy : sy + s, sx : sx + s]  # from the unmixed batch
        record.destination.append((i, dx, dy))
        record.source.append((j, sx, sy))
    return out, record


def _chosen_keypoints(valid: torch.Tensor, probability: float, count: int, generator: torch.Generator):
    """Yield (image, keypoint): each image is picked with ``probability``, then up to ``count`` of its valid
    keypoints in random order. Lazy, so callers that draw more numbers per keypoint keep one fixed draw order."""
    draws = torch.rand(valid.shape[0], generator=generator)
    for i in range(valid.shape[0]):
        candidates = torch.nonzero(valid[i]).flatten()
        if draws[i] >= probability or len(candidates) == 0:
            continue
        for k in candidates[torch.randperm(len(candidates), generator=generator)[:count]].tolist():
            yield i, k


def _pick_source(i, k, keypoints, valid, cfg, generator, flip_index) -> tuple[int, int] | None:
    """(image, keypoint) whose patch is pasted onto keypoint k of image i."""
    if cfg.source == "swap":
        if flip_index is None:
            return None
        partner = int(flip_index[k])
        return (i, partner) if partner != k and bool(valid[i, partner]) else None
    others = [j for j in range(keypoints.shape[0]) if j != i and bool(valid[j].any())]
    if not others:
        return None
    j = others[int(torch.randint(len(others), (1,), generator=generator))]
    candidates = torch.nonzero(valid[j]).flatten()
    return j, int(candidates[int(torch.randint(len(candidates), (1,), generator=generator))])


def joint_cutout(
    images: torch.Tensor,
    keypoints: torch.Tensor,
    valid: torch.Tensor,
    cfg: JointCutoutConfig,
    generator: torch.Generator,
) -> tuple[torch.Tensor, list[tuple[int, int, int]]]:
    """Erase square patches centred on (predicted) joints: a copy of ``images`` (B, 3, H, W) and the erased
    patches as (image, x0, y0). Erased pixels become 0, the normalisation mean (model.pixel_mean). The targets stay,
    so the student must place a hidden joint from the body around it (the strong view's "cutout around
    predicted joints"); keypoints (B, K, 2) are input pixels (x, y), valid (B, K) bool."""
    out = images.clone()
    b, _, height, width = images.shape
    s = min(cfg.patch_size, height, width)
    erased = []
    for i, k in _chosen_keypoints(valid, cfg.probability, cfg.count, generator):
        x0, y0 = _corner(keypoints[i, k], s, height, width)
        out[i, :, y0 : y0 + s, x0 : x0 + s] = 0.0
        erased.append((i, x0, y0))
    return out, erased
