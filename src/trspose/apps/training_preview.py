"""Pictures of what the network is fed: the first training crops of a config, with their targets.

``labeled.png``: labelled crops as the training stream yields them (augmented), each with its target heatmaps
(the maximum over keypoints, blended in) and the target keypoints.

``unlabeled.png`` (semi-supervised methods): one row per unlabelled person with three panels,
weak view | strong view with the pseudo-target warped into it | strong view after Keypoint-Mix (white squares:
pasted patches) and joint cutout (yellow squares: erased around joints, when method.joint_cutout is
on). During training the pseudo-target comes from the teacher; here a stand-in teacher that knows
the ground truth (where the pool has any) is encoded in the weak view and sent through the same code
(``make_pseudo_target``, ``perturb_strong_view``), so the picture shows whether views, warps and pastes line up.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from trspose.apps.drawing import draw_pose, save_grid
from trspose.config import ExperimentConfig, pixel_normalization
from trspose.data.datasets import denormalize
from trspose.data.geometry import affine_points, invert_affine
from trspose.data.sources import load_instances
from trspose.data.unlabeled import collate_unlabeled
from trspose.engine import build
from trspose.engine.loaders import PositionDataset
from trspose.errors import ConfigError
from trspose.methods.pseudo_labels import make_pseudo_target

ZOOM = 3  # crops are small (e.g. 96x64); draw on a 3x enlargement so skeletons stay readable


def write_training_preview(cfg: ExperimentConfig, out_dir: Path, num: int = 16) -> list[Path]:
    """Write ``labeled.png`` (and ``unlabeled.png`` for semi-supervised methods) into ``out_dir``."""
    if num < 1:
        raise ConfigError(f"--num must be at least 1, got {num}")
    files = build.resolve_data(cfg)
    spec = build.keypoint_spec(cfg)
    train = load_instances(files, spec, "train")
    labeled, _ = build.labeled_people(cfg, train, saved=None)
    stream = PositionDataset(
        build.build_dataset(cfg, labeled, train=True), seed=build.Seeds(cfg.train.seed).labeled
    )  # as fit()
    normalization = pixel_normalization(cfg.model)
    panels = [_labeled_panel(stream[position], spec, normalization) for position in range(num)]
    paths = [save_grid(panels, Path(out_dir) / "labeled.png", columns=8, max_width=1600)]
    bare = build.bare_config(cfg)  # the method's settings and views, not its weights
    method = build.build_method(bare, build.build_model(bare))
    if method.uses_unlabeled:
        paths.append(_unlabeled_preview(cfg, method, files, train, Path(out_dir) / "unlabeled.png", num))
    return paths


def _labeled_panel(sample, spec, normalization) -> np.ndarray:
    image = _enlarge(denormalize(sample.image, normalization))
    image = _blend_heatmaps(image, torch.from_numpy(sample.heatmaps))
    keypoints = np.concatenate([sample.keypoints[:, :2], 2.0 * (sample.target_weight[:, None] > 0)], axis=1)
    return draw_pose(image, _zoom_points(keypoints), spec)


def _unlabeled_preview(cfg, method, files, train, path: Path, num: int) -> Path:
    spec = build.keypoint_spec(cfg)
    normalization = pixel_normalization(cfg.model)
    pool = build.unlabeled_people(cfg, files, train)
    stream = PositionDataset(
        build.build_unlabeled(cfg, pool), seed=build.Seeds(cfg.train.seed).unlabeled
    )  # as fit()
    samples = [stream[position] for position in range(num)]
    batch = collate_unlabeled(samples)
    by_ann = {instance.ann_id: instance for instance in pool}
    codec = build.build_codec(cfg)
    flip_index = torch.as_tensor(spec.flip_index(), dtype=torch.long)
    # the stand-in teacher: ground truth encoded in the weak view (all-zero where the pool has no keypoints)
    weak_keypoints = np.stack(
        [_into_crop(by_ann[s.ann_id].keypoints, s.weak_crop_to_image, spec) for s in samples]
    )
    weak_heatmaps = torch.from_numpy(np.stack([codec.encode(k)[0] for k in weak_keypoints]))  # (B, K, h, w)
    target = make_pseudo_target(
        weak_heatmaps,
        batch.weak_to_strong,
        batch.flipped,
        flip_index,
        cfg.method.confidence_threshold,
        cfg.method.confidence_keep_fraction,
    )
    peaks = codec.heatmap_to_input(target.peaks)  # (B, K, 2) strong-view input px
    generator = torch.Generator().manual_seed(cfg.train.seed)
    mixed, pasted, erased = method.perturb_strong_view(batch.strong, target, generator)
    panels = []
    views = len(batch.strong) // len(samples)  # data.strong_views: each person's first strong view is shown
    for person in range(len(samples)):
        i = person * views
        weak = draw_pose(
            _enlarge(denormalize(batch.weak[person], normalization)),
            _zoom_points(weak_keypoints[person]),
            spec,
        )
        strong = _blend_heatmaps(_enlarge(denormalize(batch.strong[i], normalization)), target.heatmaps[i])
        kept = np.concatenate([peaks[i].numpy(), 2.0 * target.weight[i, :, None].numpy()], axis=1)
        strong = draw_pose(strong, _zoom_points(kept), spec)
        mix = _enlarge(denormalize(mixed[i], normalization))
        for boxes, patch, colour in ((pasted, cfg.method.mix.patch_size, (255, 255, 255)),
                                     (erased, cfg.method.joint_cutout.patch_size, (0, 255, 255))):  # fmt: skip
            size = min(patch, *mixed.shape[-2:]) * ZOOM
            for x0, y0 in [(x * ZOOM, y * ZOOM) for image, x, y in boxes if image == i]:
                cv2.rectangle(mix, (x0, y0), (x0 + size - 1, y0 + size - 1), colour, 1)
        panels += [weak, strong, mix]
    return save_grid(panels, path, columns=6, max_width=1600)


def _into_crop(keypoints: np.ndarray, crop_to_image: np.ndarray, spec) -> np.ndarray:
    """Image-pixel keypoints (K, 3) -> crop pixels, channels swapped when the crop is mirrored."""
    out = np.asarray(keypoints, np.float32).copy()
    out[:, :2] = affine_points(out[:, :2], invert_affine(crop_to_image))
    if np.linalg.det(crop_to_image[:, :2]) < 0:  # a mirrored view: left and right trade places
        out = out[spec.flip_index()]
    return out


def _enlarge(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB uint8 -> (ZOOM*H, ZOOM*W, 3) BGR for OpenCV drawing."""
    big = cv2.resize(rgb, None, fx=ZOOM, fy=ZOOM, interpolation=cv2.INTER_NEAREST)
    return np.ascontiguousarray(big[..., ::-1])


def _zoom_points(keypoints: np.ndarray) -> np.ndarray:
    """Crop-pixel (x, y, v) -> enlarged-image pixels (pixel centres stay centres)."""
    out = np.asarray(keypoints, np.float64).copy()
    out[:, :2] = (out[:, :2] + 0.5) * ZOOM - 0.5
    return out


def _blend_heatmaps(image_bgr: np.ndarray, heatmaps: torch.Tensor) -> np.ndarray:
    """Blend the maximum over keypoints of (K, h, w) heatmaps (0..1) onto an enlarged crop as a colour map."""
    peak = enlarge_heatmap(heatmaps.float().amax(dim=0).clamp(0, 1).numpy(), image_bgr.shape[:2])
    colour = cv2.applyColorMap((peak * 255).astype(np.uint8), cv2.COLORMAP_JET)
    alpha = (0.6 * peak)[..., None]
    return (image_bgr * (1 - alpha) + colour * alpha).astype(np.uint8)


def enlarge_heatmap(heatmap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w) heatmap -> (height, width) on the enlarged crop, aligned with the drawn keypoints.

    Heatmap pixel c sits at crop pixel c * stride (the codec's convention) and crop pixel x at enlarged pixel
    (x + 0.5) * ZOOM - 0.5 (as ``_zoom_points``); a plain resize would shift blobs by half a stride.
    """
    height, width = size
    scale = width / heatmap.shape[1]  # enlarged px per heatmap px (ZOOM * stride)
    matrix = np.array([[scale, 0, 0.5 * ZOOM - 0.5], [0, scale, 0.5 * ZOOM - 0.5]], dtype=np.float32)
    return cv2.warpAffine(heatmap.astype(np.float32), matrix, (width, height), flags=cv2.INTER_LINEAR)
