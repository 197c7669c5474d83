"""PCK and PCKh: the fraction of visible keypoints predicted within ``threshold x normaliser`` pixels.

PCK normalises by a per-person size (e.g. the box's longer side, threshold 0.05 or 0.2); PCKh, the
MPII metric, by the head segment length (0.6 x the head box diagonal, as in the MPII evaluation
code), threshold 0.5 for PCKh@0.5.
"""

import numpy as np

MPII_HEAD_FACTOR = 0.6  # MPII's SC_BIAS: head segment length = 0.6 x head box diagonal


def pck(
    pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, normaliser: np.ndarray, threshold: float = 0.05
) -> tuple[float, np.ndarray]:
    """PCK over N people: pred, gt (N, K, 2) pixels; visible (N, K) bool; normaliser (N,) pixels.

    A keypoint is correct when its distance is <= threshold * normaliser. Returns the overall
    fraction over all visible keypoints and the per-keypoint fractions (K,), nan for a keypoint that
    is never visible (and 0.0 overall when nothing is visible).
    """
    pred, gt = np.asarray(pred, dtype=float), np.asarray(gt, dtype=float)
    visible = np.asarray(visible, dtype=bool)
    normaliser = np.asarray(normaliser, dtype=float)
    if pred.shape != gt.shape or pred.shape[:2] != visible.shape or normaliser.shape != pred.shape[:1]:
        raise ValueError(
            f"pck needs pred, gt (N, K, 2), visible (N, K), normaliser (N,); got {pred.shape}, "
            f"{gt.shape}, {visible.shape}, {normaliser.shape}"
        )
    distance = np.linalg.norm(pred - gt, axis=-1)  # (N, K)
    correct = (distance <= threshold * normaliser[:, None]) & visible  # (N, K)
    visible_count = visible.sum(axis=0)  # (K,)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_keypoint = correct.sum(axis=0) / visible_count  # (K,), nan where never visible
    overall = float(correct.sum() / visible.sum()) if visible.any() else 0.0
    return overall, per_keypoint


def mpii_head_sizes(head_boxes: np.ndarray) -> np.ndarray:
    """MPII head segment lengths from head boxes (N, 4) as (x1, y1, x2, y2). (N,)"""
    head_boxes = np.asarray(head_boxes, dtype=float)
    diagonal = np.linalg.norm(head_boxes[:, 2:] - head_boxes[:, :2], axis=-1)  # (N,)
    return MPII_HEAD_FACTOR * diagonal


def pckh(
    pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, head_sizes: np.ndarray, threshold: float = 0.5
) -> tuple[float, np.ndarray]:
    """PCKh@threshold (MPII): PCK normalised by the head segment length (see ``mpii_head_sizes``)."""
    return pck(pred, gt, visible, head_sizes, threshold=threshold)
