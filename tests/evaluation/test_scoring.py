"""Scoring through the CLI and the evaluator: detector-box evaluation counts every image and equals pycocotools on
its results file, ``eval.max_images`` restricts both sides, and the stand-in model that predicts the ground truth
scores AP 100 (evaluation/inference.py, evaluation/coco_eval.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.cli_cases import (
    K,
    coco_metrics,
    oracle,
    printed_ap,
    pycocotools_ap,
    run_cli,
    val_annotations,
)  # fmt: skip
from tests.tiny_runs import TINY
from trspose.config import load_config
from trspose.data.keypoints import COCO17
from trspose.data.sources import load_instances
from trspose.engine import build
from trspose.engine.distributed import DistributedContext
from trspose.evaluation import inference
from trspose.evaluation.inference import Predictions


def test_eval_with_detector_boxes_counts_the_images_without_detections(
    root, checkpoint, tmp_path, capsys, monkeypatch
):
    """Case 1: with detections for half the images the printed AP rose (100 here) while pycocotools over all
    images gave about half; and --results held the detections before OKS-NMS, not what was scored."""
    gt = val_annotations(root)
    monkeypatch.setattr(inference, "predict", oracle(gt))
    detections = [{"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 0.9}
                  for a in gt["annotations"][:3]]  # fmt: skip
    detections.append({**detections[0], "score": 0.5})  # a duplicate person: OKS-NMS removes it
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps(detections))
    ann, results = root / "annotations" / "person_keypoints_val.json", tmp_path / "results.json"
    code, out, err = run_cli(capsys, "eval", checkpoint, "--annotations", ann, "--images", root / "images" / "val",
                             "--boxes", dets, "--results", results)  # fmt: skip
    assert code == 0, err
    written = json.loads(results.read_text())
    assert len(written) == 3  # what the table scored: the duplicate is gone
    direct = pycocotools_ap(ann, results)
    assert printed_ap(out) == pytest.approx(direct, abs=0.05)
    assert 40.0 < direct < 60.0  # three of six people found


def test_coco_metrics_score_every_image_of_the_ground_truth_or_the_given_subset(root):
    gt = val_annotations(root)
    people = gt["annotations"][:3]  # predictions for the first three images only
    predictions = Predictions(
        ann_id=np.arange(1, 4), image_id=np.array([a["image_id"] for a in people]),
        keypoints=np.array([np.reshape(a["keypoints"], (K, 3))[:, :2] for a in people], np.float32),
        scores=np.full((3, K), 0.9, np.float32), box_score=np.ones(3, np.float32),
    )  # fmt: skip
    ann = root / "annotations" / "person_keypoints_val.json"
    everything = coco_metrics(predictions, ann)
    assert everything["AP"] < 0.6 and everything["AR"] == pytest.approx(0.5)
    subset = coco_metrics(predictions, ann, image_ids=[a["image_id"] for a in people])
    assert subset["AP"] == pytest.approx(1.0)


def test_eval_max_images_restricts_ground_truth_and_predictions_to_the_same_images(root, tmp_path):
    cfg = load_config(TINY, [f"data.root={root}", f"output_dir={tmp_path}", "eval.max_images=2"])
    run = build.build_training_run(cfg, None, DistributedContext())
    first_two = sorted(image["id"] for image in val_annotations(root)["images"])[:2]
    assert run.validation.image_ids == first_two
    assert sorted({inst.image_id for inst in run.validation.dataset.instances}) == first_two


def test_the_stand_in_model_predicting_the_ground_truth_scores_100(root):
    """The stand-in behind the tests above: ground truth as predictions, with ground-truth boxes, is AP 1."""
    cfg = load_config(TINY, [f"data.root={root}"])
    instances = load_instances(build.resolve_data(cfg), COCO17, "val")
    predictions = oracle(val_annotations(root))(None, build.build_dataset(cfg, instances, train=False), None)
    metrics = coco_metrics(predictions, root / "annotations" / "person_keypoints_val.json")
    assert metrics["AP"] == pytest.approx(1.0)


def test_results_carry_the_files_own_category_id_so_pycocotools_scores_them_alike(
    root, checkpoint, tmp_path, capsys, monkeypatch
):
    gt = val_annotations(root)
    monkeypatch.setattr(inference, "predict", oracle(gt))
    gt["categories"] = [{**gt["categories"][0], "id": 7, "name": "stick"}]
    for ann in gt["annotations"]:
        ann["category_id"] = 7
    ann = tmp_path / "stick_val.json"
    ann.write_text(json.dumps(gt))
    results = tmp_path / "results.json"
    code, out, err = run_cli(capsys, "eval", checkpoint, "--annotations", ann, "--images", root / "images" / "val",
                             "--results", results)  # fmt: skip
    assert code == 0, err
    assert {r["category_id"] for r in json.loads(results.read_text())} == {7}
    assert printed_ap(out) == pytest.approx(pycocotools_ap(ann, results), abs=0.05) == pytest.approx(100.0)
