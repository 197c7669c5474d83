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


# head segments (top of the head, neck) that PCKh normalises by, by layout keypoint names
HEAD_SEGMENTS = (("head_top", "upper_neck"), ("head_top", "neck"), ("top_head", "neck"), ("head", "neck"))


def head_segment(names: tuple[str, ...] | list[str]) -> tuple[int, int] | None:
    """The (head top, neck) keypoint indices of a layout, or None when it has no head segment."""
    for top, neck in HEAD_SEGMENTS:
        if top in names and neck in names:
            return list(names).index(top), list(names).index(neck)
    return None


def pckh(
    pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, segment: tuple[int, int], threshold: float = 0.5
) -> tuple[float, np.ndarray]:
    """PCKh@``threshold``: PCK normalised by each person's head segment, the distance between its labelled head top
    and neck (people without both are left out; nan when none is left); overall and per keypoint, as :func:`pck`.
    MPII's own evaluation normalises by 0.6 x its head boxes' diagonal, which the annotations here do not carry."""
    gt, visible = np.asarray(gt, dtype=float), np.asarray(visible, dtype=bool)
    top, neck = segment
    has_head = visible[:, top] & visible[:, neck]
    size = np.linalg.norm(gt[:, top] - gt[:, neck], axis=-1)
    has_head &= size > 0
    if not has_head.any():  # nobody to score: undefined, not 0
        return float("nan"), np.full(gt.shape[1], np.nan)
    return pck(np.asarray(pred)[has_head], gt[has_head], visible[has_head], size[has_head], threshold)


def pck_hits(pred: np.ndarray, gt: np.ndarray, normaliser: np.ndarray, threshold: float) -> np.ndarray:
    """(N, K) bool: each keypoint of pred, gt (N, K, 2) within ``threshold x normaliser`` (N,) pixels."""
    distance = np.linalg.norm(np.asarray(pred, dtype=float) - np.asarray(gt, dtype=float), axis=-1)
    return distance <= threshold * np.asarray(normaliser, dtype=float)[:, None]
