"""Metrics, kept apart from datasets: COCO keypoint AP (pycocotools) and PCK."""

from trspose.evaluation.coco_eval import (
    METRIC_NAMES,
    evaluate_coco_keypoints,
    make_results,
    oks_nms,
    rescore,
    write_results_json,
)
from trspose.evaluation.pck import pck

__all__ = [
    "METRIC_NAMES",
    "evaluate_coco_keypoints",
    "make_results",
    "oks_nms",
    "pck",
    "rescore",
    "write_results_json",
]
