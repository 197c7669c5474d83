"""COCO keypoint AP/AR (OKS) through pycocotools, plus the top-down result conventions around it.

``make_results`` turns per-person predictions into COCO keypoint results with the rescoring used by
the HRNet and MMPose top-down pipelines (instance score = box score x mean confident keypoint
score) and optional OKS non-maximum suppression for detector boxes.
"""

import contextlib
import copy
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from trspose.data.coco_checks import check_keypoint_file
from trspose.data.keypoints import COCO17
from trspose.errors import DataError
from trspose.io import read_json, write_json

METRIC_NAMES = (
    "AP",
    "AP50",
    "AP75",
    "APm",
    "APl",
    "AR",
    "AR50",
    "AR75",
    "ARm",
    "ARl",
)  # COCOeval.stats order
KEYPOINT_SCORE_THRESHOLD = 0.2  # HRNet / MMPose "in_vis_thre" for rescoring


def _quiet(verbose: bool):
    """pycocotools prints progress and the summary table; keep them only when asked."""
    return contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())


def load_ground_truth(
    ground_truth: str | Path | COCO, num_keypoints: int = 17, verbose: bool = False, category: str = ""
) -> COCO:
    """A pycocotools ``COCO`` of a person-keypoints file, checked whole first (``coco_checks``), so that a NaN,
    a missing ``categories`` or a repeated id is a one-line DataError rather than a silent score or a
    traceback. pycocotools gets the checked data: the file's own values, optional fields completed."""
    if isinstance(ground_truth, COCO):
        return ground_truth
    path = Path(ground_truth)
    if not path.is_file():
        raise DataError(f"COCO ground-truth file {path} does not exist; check the annotation path")
    coco = COCO()
    coco.dataset = check_keypoint_file(
        read_json(path, "annotation file"), path, num_keypoints, category=category
    )
    with _quiet(verbose):
        coco.createIndex()
    return coco


def evaluate_coco_keypoints(
    ground_truth: str | Path | COCO,
    results: list[dict],
    *,
    sigmas: Sequence[float] | np.ndarray | None = None,
    image_ids: Sequence[int] | None = None,
    verbose: bool = False,
    category: str = "",
) -> dict[str, float]:
    """COCO keypoint AP and AR as fractions in [0, 1] (``METRIC_NAMES``) of the file's keypoint category
    (``category`` by name where it has several; results name it by trspose's id, ``PERSON_CATEGORY_ID``).

    ``sigmas`` are the per-keypoint OKS sigmas (default COCO-17). Every image of the ground truth counts,
    whether or not ``results`` holds people for it (a person nobody predicted is a miss); ``image_ids``
    restricts the evaluation to those images, for ground truth and results alike. No results gives all
    zeros. A metric whose area range holds no ground-truth person (pycocotools reports -1) is ``nan``.
    """
    sigmas = COCO17.sigmas if sigmas is None else sigmas
    coco_gt = load_ground_truth(ground_truth, len(sigmas), verbose, category)
    if not results:
        return dict.fromkeys(METRIC_NAMES, 0.0)
    unknown = {r["image_id"] for r in results} - set(coco_gt.getImgIds())
    if unknown:
        raise DataError(
            f"{len(unknown)} result image ids (e.g. {sorted(unknown)[:3]}) are not in the ground truth; "
            "evaluate against the annotation file the predictions were made for"
        )
    wrong = next((i for i, r in enumerate(results) if len(r["keypoints"]) != 3 * len(sigmas)), None)
    if wrong is not None:
        raise DataError(
            f"result {wrong} has {len(results[wrong]['keypoints'])} keypoint values, expected {3 * len(sigmas)} "
            f"({len(sigmas)} keypoints x 3); evaluate with the keypoint spec the predictions were made with"
        )
    with _quiet(verbose):
        coco_dt = coco_gt.loadRes(copy.deepcopy(results))  # loadRes adds fields to the dicts it gets
        evaluator = COCOeval(coco_gt, coco_dt, iouType="keypoints")
        evaluator.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=float)
        if image_ids is not None:
            evaluator.params.imgIds = sorted(image_ids)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {
        name: float("nan") if value < 0 else float(value)
        for name, value in zip(METRIC_NAMES, evaluator.stats)
    }


def rescore(keypoint_scores: np.ndarray, box_scores: np.ndarray, threshold: float = KEYPOINT_SCORE_THRESHOLD):
    """Instance scores ``box_score * mean(keypoint scores > threshold)`` (0 when none is above). (N,)"""
    keypoint_scores = np.asarray(keypoint_scores, dtype=float)  # (N, K)
    confident = keypoint_scores > threshold  # (N, K)
    count = confident.sum(axis=1)  # (N,)
    total = np.where(confident, keypoint_scores, 0.0).sum(axis=1)  # (N,)
    mean = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    return np.asarray(box_scores, dtype=float) * mean


def make_results(
    image_ids: Sequence[int] | np.ndarray,
    keypoints: np.ndarray,
    keypoint_scores: np.ndarray,
    box_scores: np.ndarray,
    *,
    areas: np.ndarray | None = None,
    category_id: int = 1,
    score_threshold: float = KEYPOINT_SCORE_THRESHOLD,
    nms_threshold: float | None = None,
    sigmas: Sequence[float] | None = None,
) -> list[dict]:
    """COCO keypoint results from N people: keypoints (N, K, 2) in image pixels, scores (N, K), (N,).

    ``areas`` (N,) are the person box areas, used by OKS-NMS (default: the keypoints' extent).
    ``nms_threshold`` (e.g. 0.9) runs OKS-NMS per image, for detector boxes; None keeps everyone.
    """
    keypoints = np.asarray(keypoints, dtype=float)  # (N, K, 2)
    keypoint_scores = np.asarray(keypoint_scores, dtype=float)  # (N, K)
    scores = rescore(keypoint_scores, box_scores, threshold=score_threshold)  # (N,)
    triplets = np.concatenate([keypoints, keypoint_scores[..., None]], axis=-1)  # (N, K, 3)
    results = []
    for index, image_id in enumerate(image_ids):
        result = {
            "image_id": int(image_id),
            "category_id": category_id,
            "keypoints": triplets[index].reshape(-1).tolist(),
            "score": float(scores[index]),
        }
        if areas is not None:
            result["area"] = float(areas[index])
        results.append(result)
    if nms_threshold is not None:
        results = oks_nms(results, threshold=nms_threshold, sigmas=sigmas)
    return results


def _areas(results: list[dict], points: np.ndarray) -> np.ndarray:
    """Each result's ``area``, or the area of its keypoints' bounding box (as pycocotools computes). (M,)"""
    extent = points.max(axis=1) - points.min(axis=1)  # (M, 2)
    fallback = extent[:, 0] * extent[:, 1]
    return np.array([r.get("area", a) for r, a in zip(results, fallback)], dtype=float)


def oks_matrix(points: np.ndarray, areas: np.ndarray, sigmas: Sequence[float]) -> np.ndarray:
    """Pairwise OKS between M people (HRNet's ``oks_iou``: mean over all K keypoints). (M, M)"""
    variances = (2 * np.asarray(sigmas, dtype=float)) ** 2  # (K,)
    squared = ((points[:, None] - points[None]) ** 2).sum(axis=-1)  # (M, M, K)
    scale = (areas[:, None] + areas[None]) / 2 + np.spacing(1)  # (M, M)
    return np.exp(-squared / variances / scale[..., None] / 2).mean(axis=-1)  # (M, M)


def oks_nms(results: list[dict], threshold: float = 0.9, sigmas: Sequence[float] | None = None) -> list[dict]:
    """Greedy OKS non-maximum suppression per image: keep the best-scoring person, drop others whose
    OKS with it exceeds ``threshold``, repeat. Returns the kept results, best first per image."""
    sigmas = COCO17.sigmas if sigmas is None else sigmas
    by_image: dict[int, list[dict]] = {}
    for result in results:
        by_image.setdefault(result["image_id"], []).append(result)
    kept = []
    for group in by_image.values():
        group = sorted(group, key=lambda r: -r["score"])
        points = np.array([r["keypoints"] for r in group], dtype=float).reshape(len(group), -1, 3)[..., :2]
        overlap = oks_matrix(points, _areas(group, points), sigmas)  # (M, M)
        suppressed = np.zeros(len(group), dtype=bool)
        for index in range(len(group)):
            if suppressed[index]:
                continue
            kept.append(group[index])
            suppressed |= overlap[index] > threshold
    return kept


def write_results_json(results: list[dict], path: str | Path) -> None:
    """Write results as a COCO results JSON file, atomically (see :func:`trspose.io.atomic_path`)."""
    write_json(results, path, indent=None)
