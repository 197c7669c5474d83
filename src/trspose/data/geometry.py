"""Boxes, 2x3 affine matrices, flips and heatmap warping for top-down pose estimation.

Conventions (used by every module in ``trspose.data``):

- Points are (x, y) in pixels; sizes are (height, width).
- Pixel centres sit at integer coordinates (OpenCV's ``warpAffine`` convention), so pixel ``i``
  covers ``[i - 0.5, i + 0.5)``.
- The crop affine follows HRNet / MMPose (non-UDP): the box centre maps to ``(W / 2, H / 2)`` of
  the crop and the padded box width maps to the crop width. The box corners therefore map to
  the crop corners ``(0, 0)`` and ``(W, H)``.
- A crop pixel ``x`` lies at heatmap pixel ``x * w / W`` (HRNet's ``joint / feat_stride``), see
  :func:`input_to_heatmap_matrix`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def _as_size(size: Sequence[int] | int) -> tuple[int, int]:
    """(height, width) from an int or a pair."""
    if isinstance(size, int):
        return size, size
    height, width = size
    return int(height), int(width)


def box_to_center_scale(
    box_xywh: np.ndarray | Sequence[float],
    aspect_ratio: float | Sequence[float],
    padding: float = 1.25,
) -> tuple[np.ndarray, np.ndarray]:
    """Centre and padded (width, height) of a box, widened or heightened to the crop aspect ratio.

    ``aspect_ratio`` is the crop's height / width as a float, or the crop size (height, width).
    The 1.25 padding is HRNet's (SimpleBaseline, Xiao et al. 2018): a little context around the box.
    Returns ``center`` (2,) and ``scale`` (2,) = padded box (w, h) in image pixels, float32.
    """
    x, y, w, h = (float(v) for v in np.asarray(box_xywh, dtype=np.float64)[:4])
    if isinstance(aspect_ratio, (int, float)):
        height_over_width = float(aspect_ratio)
    else:
        crop_h, crop_w = aspect_ratio
        height_over_width = float(crop_h) / float(crop_w)
    center = np.array([x + w * 0.5, y + h * 0.5], dtype=np.float32)
    if h > w * height_over_width:
        w = h / height_over_width
    else:
        h = w * height_over_width
    scale = np.array([w * padding, h * padding], dtype=np.float32)
    return center, scale


def get_affine_transform(
    center: np.ndarray | Sequence[float],
    scale: np.ndarray | Sequence[float],
    rotation_deg: float,
    output_size: Sequence[int],
    shift: Sequence[float] = (0.0, 0.0),
    inverse: bool = False,
) -> np.ndarray:
    """The (2, 3) matrix from image pixels to crop pixels (or back with ``inverse=True``).

    HRNet convention: ``center + shift * scale`` maps to the crop centre ``(W / 2, H / 2)``, the
    image is rotated by ``rotation_deg`` counter-clockwise about it (as seen on screen), and
    ``scale[0]`` (the padded box width) maps to the crop width. ``scale[1]`` is only implied via
    the aspect ratio, exactly as in HRNet.
    """
    out_h, out_w = _as_size(output_size)
    center = np.asarray(center, dtype=np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    src_center = center + scale * np.asarray(shift, dtype=np.float64)
    zoom = out_w / scale[0]
    theta = math.radians(rotation_deg)
    cos, sin = math.cos(theta), math.sin(theta)
    # image -> crop: translate to the centre, rotate by -theta (HRNet rotates the source direction
    # by +theta), zoom, translate to the crop centre.
    linear = zoom * np.array([[cos, sin], [-sin, cos]])
    offset = np.array([out_w * 0.5, out_h * 0.5]) - linear @ src_center
    matrix = np.concatenate([linear, offset[:, None]], axis=1)
    if inverse:
        matrix = invert_affine(matrix)
    return matrix.astype(np.float32)


def affine_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) matrix to points (..., 2); returns float32 points (..., 2)."""
    points = np.asarray(points, dtype=np.float64)
    matrix = np.asarray(matrix, dtype=np.float64)
    return (points @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def to_homogeneous(matrix: np.ndarray) -> np.ndarray:
    """(2, 3) -> (3, 3) with a last row [0, 0, 1] (float64)."""
    full = np.eye(3)
    full[:2] = np.asarray(matrix, dtype=np.float64)
    return full


def compose_affine(*matrices: np.ndarray) -> np.ndarray:
    """Product of (2, 3) matrices in mathematical order: ``compose_affine(a, b)(p) = a(b(p))``."""
    full = np.eye(3)
    for matrix in matrices:
        full = full @ to_homogeneous(matrix)
    return full[:2].astype(np.float32)


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) affine matrix."""
    return np.linalg.inv(to_homogeneous(matrix))[:2].astype(np.float32)


def scale_matrix(scale_x: float, scale_y: float) -> np.ndarray:
    """The (2, 3) matrix ``(x, y) -> (scale_x * x, scale_y * y)``."""
    return np.array([[scale_x, 0.0, 0.0], [0.0, scale_y, 0.0]], dtype=np.float32)


def horizontal_flip_matrix(width: int) -> np.ndarray:
    """Mirror about the vertical centre line of a ``width``-pixel grid: ``x -> width - 1 - x``.

    This is exactly ``np.fliplr`` on the pixel grid (pixel ``i`` <-> pixel ``width - 1 - i``).
    """
    return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0]], dtype=np.float32)


def input_to_heatmap_matrix(input_size: Sequence[int], heatmap_size: Sequence[int]) -> np.ndarray:
    """Crop pixels -> heatmap pixels (HRNet's ``x / stride``, one stride per axis)."""
    in_h, in_w = _as_size(input_size)
    hm_h, hm_w = _as_size(heatmap_size)
    return scale_matrix(hm_w / in_w, hm_h / in_h)


def _pixel_to_normalized(height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """(3, 3) from pixel coordinates to ``grid_sample``'s [-1, 1] with ``align_corners=True``.

    With ``align_corners=True``, -1 and +1 are the centres of the first and last pixels, which
    matches the integer-pixel-centre convention used everywhere here.
    """
    sx = 2.0 / max(width - 1, 1)
    sy = 2.0 / max(height - 1, 1)
    rows = [[sx, 0.0, -1.0], [0.0, sy, -1.0], [0.0, 0.0, 1.0]]
    return torch.tensor(rows, dtype=torch.float64, device=like.device)


def warp_heatmaps(
    heatmaps: torch.Tensor,
    matrix: torch.Tensor | np.ndarray,
    flip_index: np.ndarray | Sequence[int] | None = None,
    flipped: torch.Tensor | np.ndarray | None = None,
) -> torch.Tensor:
    """Resample heatmaps (B, K, h, w) into another view; zeros outside the source.

    ``matrix`` (B, 2, 3) maps source-heatmap pixels to destination-heatmap pixels (e.g. the
    ``weak_to_strong`` of :class:`trspose.data.unlabeled.UnlabeledBatch`). Where ``flipped[b]`` is
    true the destination is a mirror image of the source, so its keypoint channels are permuted
    with ``flip_index`` (left <-> right), as for ground-truth flips. Runs on the heatmaps' device
    without host synchronisation.
    """
    batch, _, height, width = heatmaps.shape
    matrix = torch.as_tensor(matrix).to(device=heatmaps.device, dtype=torch.float64)  # (B, 2, 3)
    full = torch.eye(3, dtype=torch.float64, device=heatmaps.device).repeat(batch, 1, 1)
    full[:, :2] = matrix  # (B, 3, 3)
    to_norm = _pixel_to_normalized(height, width, heatmaps)
    # affine_grid maps each *destination* location to the *source* location to sample.
    theta = (to_norm @ torch.linalg.inv(full) @ torch.linalg.inv(to_norm))[:, :2]  # (B, 2, 3)
    grid = F.affine_grid(theta.to(heatmaps.dtype), list(heatmaps.shape), align_corners=True)  # (B, h, w, 2)
    warped = F.grid_sample(heatmaps, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    if flip_index is None or flipped is None:
        return warped  # (B, K, h, w)
    index = torch.as_tensor(np.asarray(flip_index), dtype=torch.long, device=heatmaps.device)
    mask = torch.as_tensor(flipped, device=heatmaps.device).bool().view(batch, 1, 1, 1)
    return torch.where(mask, warped[:, index], warped)  # (B, K, h, w)
