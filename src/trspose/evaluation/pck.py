"""PCK: the fraction of visible keypoints predicted within ``threshold x normaliser`` pixels, where the
normaliser is a per-person size (e.g. the box's longer side, threshold 0.05 or 0.2)."""

import numpy as np


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
    correct = pck_hits(pred, gt, normaliser, threshold) & visible  # (N, K)
    visible_count = visible.sum(axis=0)  # (K,)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_keypoint = correct.sum(axis=0) / visible_count  # (K,), nan where never visible
    overall = float(correct.sum() / visible.sum()) if visible.any() else 0.0
    return overall, per_keypoint


def pck_hits(pred: np.ndarray, gt: np.ndarray, normaliser: np.ndarray, threshold: float) -> np.ndarray:
    """(N, K) bool: each keypoint of pred, gt (N, K, 2) within ``threshold x normaliser`` (N,) pixels."""
    distance = np.linalg.norm(np.asarray(pred, dtype=float) - np.asarray(gt, dtype=float), axis=-1)
    return distance <= threshold * np.asarray(normaliser, dtype=float)[:, None]
