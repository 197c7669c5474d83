"""The eval and predict jobs behind the CLI (apps/jobs.py), called directly."""

from __future__ import annotations

import json

import pytest

from tests.cli_cases import oracle, val_annotations
from trspose.apps import jobs
from trspose.evaluation import inference


def test_evaluate_checkpoint_scores_writes_and_draws_what_it_scored(root, checkpoint, tmp_path, monkeypatch):
    monkeypatch.setattr(inference, "predict", oracle(val_annotations(root)))  # predicts the ground truth
    metrics = jobs.evaluate_checkpoint(
        checkpoint, results_out=str(tmp_path / "results.json"), overlays=str(tmp_path / "ov"), num_overlays=4,
        annotations=str(root / "annotations" / "person_keypoints_val.json"),
    )  # fmt: skip
    assert metrics["AP"] == pytest.approx(100.0) and set(metrics) >= {"AP", "AP50", "AR"}
    results = json.loads((tmp_path / "results.json").read_text())
    assert len(results) == len(val_annotations(root)["annotations"]) == 6
    assert (
        len(list((tmp_path / "ov" / "overlays").glob("*.png"))) == 4
        and (tmp_path / "ov" / "grid.png").is_file()
    )


def test_predict_images_writes_one_result_and_one_overlay_per_person(root, checkpoint, tmp_path):
    images = sorted((root / "images" / "val").iterdir())[:3]
    out = jobs.predict_images(checkpoint, [str(p) for p in images], boxes=None, out_dir=tmp_path / "pred")
    results = json.loads((out / "predictions.json").read_text())
    assert sorted(r["file_name"] for r in results) == sorted(p.name for p in images)  # each image one person
    assert all(len(r["keypoints"]) == 3 * 17 for r in results)
    assert sorted(p.stem for p in (out / "overlays").glob("*.png")) == sorted(p.stem for p in images)
