"""Metrics, kept apart from datasets: COCO keypoint AP (pycocotools) and PCK / PCKh."""

from trspose.evaluation.coco_eval import (
    METRIC_NAMES,
    evaluate_coco_keypoints,
    load_results_json,
    make_results,
    oks_nms,
    rescore,
    write_results_json,
)
from trspose.evaluation.pck import mpii_head_sizes, pck, pckh

__all__ = [
    "METRIC_NAMES",
    "evaluate_coco_keypoints",
    "load_results_json",
    "make_results",
    "mpii_head_sizes",
    "oks_nms",
    "pck",
    "pckh",
    "rescore",
    "write_results_json",
]
