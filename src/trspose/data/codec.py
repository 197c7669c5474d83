"""The keypoint <-> heatmap codec: Gaussian targets in, sub-pixel coordinates out.

A pure unit (MMPose's ``MSRAHeatmap`` idea): ``encode`` makes training targets from keypoints in
crop (input) pixels, ``decode`` turns predicted heatmaps back into crop pixels. Crop pixel ``x``
sits at heatmap pixel ``x * w / W`` (HRNet's ``joint / feat_stride``); pixel centres are integers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

DECODE_METHODS = ("dark", "argmax")
HEATMAP_STRIDE = 4  # input px per heatmap px: every head outputs input / 4 (64x48 for a 256x192 crop)
INPUT_MULTIPLE = 32  # the deepest backbone stage has stride 32; other input sizes break the shape arithmetic


def heatmap_size_for(input_size: Sequence[int]) -> tuple[int, int]:
    """The (height, width) of the heatmaps a model outputs for an input (crop) of ``input_size`` (height, width)."""
    return int(input_size[0]) // HEATMAP_STRIDE, int(input_size[1]) // HEATMAP_STRIDE


def valid_input_size(input_size: Sequence[int]) -> bool:
    """Whether an input size (height, width) is positive multiples of ``INPUT_MULTIPLE``, as the models need."""
    return all(side > 0 and side % INPUT_MULTIPLE == 0 for side in input_size)


class HeatmapCodec:
    """Encode keypoints as Gaussian heatmaps and decode heatmaps to keypoints.

    ``input_size`` and ``heatmap_size`` are (height, width); ``sigma`` is in heatmap pixels
    (2.0 for 64x48 heatmaps, the SimpleBaseline / HRNet value).
    """

    def __init__(
        self,
        input_size: Sequence[int],
        heatmap_size: Sequence[int],
        sigma: float = 2.0,
    ) -> None:
        if sigma <= 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.heatmap_size = (int(heatmap_size[0]), int(heatmap_size[1]))
        self.sigma = float(sigma)
        # heatmap px per input px, (x, y)
        self.input_to_heatmap = np.array(
            [self.heatmap_size[1] / self.input_size[1], self.heatmap_size[0] / self.input_size[0]],
            dtype=np.float64,
        )

    def encode(self, keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints (K, 3) in input pixels -> heatmaps (K, h, w) float32, target_weight (K,) float32.

        The Gaussian is centred on the exact sub-pixel location (DARK's unbiased encoding, Zhang et
        al. 2020), so decoding can recover it. A keypoint gets weight 0 (and an all-zero heatmap)
        when it is not labelled (v = 0) or its centre falls outside the heatmap's pixels.
        """
        height, width = self.heatmap_size
        keypoints = np.asarray(keypoints, dtype=np.float64)
        centers = keypoints[:, :2] * self.input_to_heatmap  # (K, 2) heatmap px
        inside = (
            (centers[:, 0] >= -0.5) & (centers[:, 0] < width - 0.5)
            & (centers[:, 1] >= -0.5) & (centers[:, 1] < height - 0.5)
        )  # fmt: skip
        target_weight = ((keypoints[:, 2] > 0) & inside).astype(np.float32)  # (K,)
        xs = np.arange(width, dtype=np.float64)
        ys = np.arange(height, dtype=np.float64)
        gauss_x = np.exp(-((xs[None, :] - centers[:, 0:1]) ** 2) / (2 * self.sigma**2))  # (K, w)
        gauss_y = np.exp(-((ys[None, :] - centers[:, 1:2]) ** 2) / (2 * self.sigma**2))  # (K, h)
        heatmaps = gauss_y[:, :, None] * gauss_x[:, None, :]  # (K, h, w)
        heatmaps *= target_weight[:, None, None]
        return heatmaps.astype(np.float32), target_weight

    def decode(
        self, heatmaps: torch.Tensor, decode_method: str = "dark"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Heatmaps (B, K, h, w) -> coords (B, K, 2) in input pixels, scores (B, K) (peak values).

        ``"dark"`` refines the argmax with a second-order Taylor expansion of the log of the
        Gaussian-blurred heatmap (DARK, Zhang et al. CVPR 2020); ``"argmax"`` returns the peak pixel.
        """
        if decode_method not in DECODE_METHODS:
            raise ValueError(f"decode_method must be one of {DECODE_METHODS}, got {decode_method!r}")
        heatmaps = torch.as_tensor(heatmaps).detach().float()
        coords, scores = argmax_heatmaps(heatmaps)  # (B, K, 2) heatmap px, (B, K)
        if decode_method == "dark":
            coords = refine_dark(heatmaps, coords, self.sigma)
        return self.heatmap_to_input(coords), scores

    def input_to_heatmap_points(self, points: torch.Tensor) -> torch.Tensor:
        """Input (crop) pixel coordinates (..., 2) (x, y) -> heatmap pixels, as ``encode`` places them."""
        scale = torch.as_tensor(self.input_to_heatmap, dtype=points.dtype, device=points.device)
        return points * scale

    def gaussians(self, centers: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Heatmaps (N, K, h, w) of Gaussians centred on heatmap-pixel ``centers`` (N, K, 2), as ``encode`` makes
        them, and whether each centre falls inside the heatmap's pixels (N, K) (outside ones are all zero)."""
        height, width = self.heatmap_size
        xs = torch.arange(width, dtype=centers.dtype, device=centers.device)
        ys = torch.arange(height, dtype=centers.dtype, device=centers.device)
        cx, cy = centers[..., 0:1], centers[..., 1:2]  # (N, K, 1)
        inside = (
            (cx[..., 0] >= -0.5)
            & (cx[..., 0] < width - 0.5)
            & (cy[..., 0] >= -0.5)
            & (cy[..., 0] < height - 0.5)
        )
        gauss_x = torch.exp(-((xs - cx) ** 2) / (2 * self.sigma**2))  # (N, K, w)
        gauss_y = torch.exp(-((ys - cy) ** 2) / (2 * self.sigma**2))  # (N, K, h)
        heatmaps = gauss_y[..., :, None] * gauss_x[..., None, :] * inside[..., None, None]
        return heatmaps, inside

    def heatmap_to_input(self, points: torch.Tensor) -> torch.Tensor:
        """Heatmap pixel coordinates (..., 2) (x, y) -> input (crop) pixels: the inverse of ``encode``'s
        ``x * w / W``. Where a pseudo-keypoint's heatmap peak lies in the crop (Keypoint-Mix, cutout, probes)."""
        scale = torch.as_tensor(1.0 / self.input_to_heatmap, dtype=points.dtype, device=points.device)
        return points * scale


def argmax_heatmaps(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Peak pixel (x, y) (B, K, 2) float32 and peak value (B, K, heatmaps' dtype) of each heatmap (B, K, h, w);
    of tied pixels the first in row-major order."""
    batch, num_keypoints, _, width = heatmaps.shape
    scores, flat_index = heatmaps.reshape(batch, num_keypoints, -1).max(dim=-1)  # (B, K)
    xs = (flat_index % width).float()
    ys = torch.div(flat_index, width, rounding_mode="floor").float()
    return torch.stack([xs, ys], dim=-1), scores


def blur_kernel_size(sigma: float) -> int:
    """DARK's blur kernel size for a target sigma (OpenCV's sigma/size rule; 11 for sigma 2)."""
    size = int(round(2 * ((sigma - 0.8) / 0.3 + 1) + 1))
    size = max(size, 3)
    return size if size % 2 == 1 else size + 1


def gaussian_blur(heatmaps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, K, h, w), zero padding, keeping each map's original peak."""
    batch, num_keypoints, height, width = heatmaps.shape
    size = blur_kernel_size(sigma)
    offsets = torch.arange(size, dtype=heatmaps.dtype, device=heatmaps.device) - size // 2
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    flat = heatmaps.reshape(batch * num_keypoints, 1, height, width)
    blurred = F.conv2d(flat, kernel.view(1, 1, 1, size), padding=(0, size // 2))
    blurred = F.conv2d(blurred, kernel.view(1, 1, size, 1), padding=(size // 2, 0))
    blurred = blurred.reshape(batch, num_keypoints, height, width)
    # DARK rescales so the blurred map keeps the original maximum.
    original_max = heatmaps.amax(dim=(2, 3), keepdim=True)
    blurred_max = blurred.amax(dim=(2, 3), keepdim=True).clamp_min(1e-12)
    return blurred * (original_max / blurred_max)


def refine_dark(heatmaps: torch.Tensor, coords: torch.Tensor, sigma: float) -> torch.Tensor:
    """Sub-pixel refinement of integer peaks (B, K, 2) on heatmaps (B, K, h, w), in heatmap px.

    Offset = -Hessian^-1 @ gradient of log(blurred heatmap) at the peak, with MMPose's finite
    differences. Peaks within 2 px of the border, flat maps and non-concave spots are left as they
    are; offsets are clamped to one pixel because a true Gaussian peak is never further away.
    """
    batch, num_keypoints, height, width = heatmaps.shape
    log_maps = torch.log(gaussian_blur(heatmaps, sigma).clamp_min(1e-10))
    padded = F.pad(log_maps, (2, 2, 2, 2), mode="replicate").reshape(batch, num_keypoints, -1)
    padded_w = width + 4
    x = coords[..., 0].long() + 2  # (B, K) in padded px
    y = coords[..., 1].long() + 2

    def at(dx: int, dy: int) -> torch.Tensor:
        return padded.gather(2, ((y + dy) * padded_w + (x + dx)).unsqueeze(-1)).squeeze(-1)  # (B, K)

    center = at(0, 0)
    grad_x = 0.5 * (at(1, 0) - at(-1, 0))
    grad_y = 0.5 * (at(0, 1) - at(0, -1))
    dxx = 0.25 * (at(2, 0) - 2 * center + at(-2, 0))
    dyy = 0.25 * (at(0, 2) - 2 * center + at(0, -2))
    dxy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
    det = dxx * dyy - dxy**2
    safe_det = torch.where(det.abs() > 1e-12, det, torch.ones_like(det))
    offset_x = -(dyy * grad_x - dxy * grad_y) / safe_det
    offset_y = -(-dxy * grad_x + dxx * grad_y) / safe_det
    offset = torch.stack([offset_x, offset_y], dim=-1).clamp(-1.0, 1.0)  # (B, K, 2)
    interior = (x >= 4) & (x < width) & (y >= 4) & (y < height)  # 2 px from every border
    valid = interior & (det > 1e-12) & (dxx < 0) & (heatmaps.amax(dim=(2, 3)) > 0)
    return coords + offset * valid.unsqueeze(-1).to(offset.dtype)


def flip_back(heatmaps: torch.Tensor | np.ndarray, flip_index: np.ndarray | Sequence[int]):
    """Undo a horizontal flip of the input on predicted heatmaps (B, K, h, w) for flip testing.

    Mirrors the width axis and swaps left/right channels. As in HRNet, the heatmap grid flip
    ``x -> w - 1 - x`` is not exactly the input flip ``x -> W - 1 - x`` scaled down: the result
    peaks ``1 - w / W`` heatmap px left of the unflipped prediction (0.75 px at stride 4; HRNet
    shifts the flipped-back heatmaps right by one heatmap px to compensate).
    """
    index = np.asarray(flip_index)
    if isinstance(heatmaps, np.ndarray):
        return np.ascontiguousarray(heatmaps[:, index, :, ::-1])
    return heatmaps.flip(-1)[:, torch.as_tensor(index, dtype=torch.long, device=heatmaps.device)]
