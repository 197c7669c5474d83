"""COCO keypoint evaluation against pycocotools run directly on the same files."""

import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from trspose.data.keypoints import COCO17
from trspose.errors import DataError
from trspose.evaluation import (
    METRIC_NAMES,
    evaluate_coco_keypoints,
    make_results,
    oks_nms,
    rescore,
    write_results_json,
)

K = COCO17.num_keypoints


def _person(rng, annotation_id, image_id, box, *, crowd=False, hidden=(), occluded=()):
    """A COCO person annotation with keypoints inside ``box`` (x, y, w, h); v=0 for hidden, 1 occluded."""
    x, y, w, h = box
    points = np.stack([x + rng.uniform(0, w, K), y + rng.uniform(0, h, K)], axis=1).round(2)
    visibility = np.full(K, 2)
    visibility[list(hidden)] = 0
    visibility[list(occluded)] = 1
    points[visibility == 0] = 0
    triplets = np.concatenate([points, visibility[:, None]], axis=1)
    return {
        "id": annotation_id,
        "image_id": image_id,
        "category_id": 1,
        "bbox": [x, y, w, h],
        "area": 0.8 * w * h,
        "iscrowd": int(crowd),
        "num_keypoints": int((visibility > 0).sum()),
        "keypoints": triplets.reshape(-1).tolist(),
    }


@pytest.fixture
def gt_path(tmp_path):
    rng = np.random.default_rng(0)
    annotations = [
        _person(rng, 1, 1, (10, 10, 120, 200), occluded=(3, 4)),  # large
        _person(rng, 2, 1, (200, 30, 60, 100), hidden=(0, 1, 2)),  # medium (area 4800)
        _person(rng, 3, 1, (300, 20, 150, 150), crowd=True),
        _person(rng, 4, 2, (50, 50, 100, 180), occluded=(15, 16)),  # large
        _person(rng, 5, 2, (250, 40, 50, 90), hidden=(9, 10), occluded=(7,)),  # medium (area 3600)
        _person(rng, 6, 3, (20, 20, 200, 250)),  # large
    ]
    dataset = {
        "images": [{"id": i, "width": 640, "height": 480, "file_name": f"{i}.jpg"} for i in (1, 2, 3)],
        "annotations": annotations,
        "categories": [COCO17.coco_category()],
    }
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(dataset))
    return path


def _gt_as_results(gt_path, offsets=None):
    """Predictions equal to the ground truth of every non-crowd person, optionally shifted."""
    annotations = [a for a in json.loads(gt_path.read_text())["annotations"] if not a["iscrowd"]]
    keypoints = np.array([a["keypoints"] for a in annotations], dtype=float).reshape(-1, K, 3)[..., :2]
    if offsets is not None:
        keypoints = keypoints + offsets
    scores = np.linspace(1.0, 0.5, len(annotations))[:, None].repeat(K, axis=1)
    image_ids = [a["image_id"] for a in annotations]
    return make_results(image_ids, keypoints, scores, np.ones(len(annotations)))


def _load_coco_quietly(path):
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def _pycocotools_stats(gt_path, results_path):
    coco_gt = _load_coco_quietly(gt_path)
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = COCOeval(coco_gt, coco_gt.loadRes(str(results_path)), iouType="keypoints")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


def test_ground_truth_as_predictions_is_perfect(gt_path):
    metrics = evaluate_coco_keypoints(gt_path, _gt_as_results(gt_path))
    assert list(metrics) == list(METRIC_NAMES)
    for name in METRIC_NAMES:
        assert metrics[name] == pytest.approx(1.0), name


def test_perturbed_predictions_match_pycocotools_directly(gt_path, tmp_path):
    offsets = np.zeros((5, K, 2))
    offsets[0, :6] = (4.0, -3.0)
    offsets[1, 5:] = (6.0, 2.0)
    offsets[3, ::2] = (-9.0, 5.0)
    offsets[4, :] = (2.5, 2.5)
    results = _gt_as_results(gt_path, offsets)
    results_path = tmp_path / "results.json"
    write_results_json(results, results_path)
    expected = _pycocotools_stats(gt_path, results_path)
    metrics = evaluate_coco_keypoints(_load_coco_quietly(gt_path), json.loads(results_path.read_text()))
    assert 0.0 < metrics["AP"] < 1.0
    for name, value in zip(METRIC_NAMES, expected):
        assert metrics[name] == pytest.approx(value, abs=1e-9), name


def test_sigmas_and_image_ids_are_passed_through(gt_path):
    offsets = np.full((5, K, 2), 3.0)
    results = _gt_as_results(gt_path, offsets)
    default = evaluate_coco_keypoints(gt_path, results)
    wide = evaluate_coco_keypoints(gt_path, results, sigmas=[1.0] * K)
    assert wide["AP"] > default["AP"]
    only_3 = evaluate_coco_keypoints(gt_path, results, image_ids=[3])  # one large person
    assert np.isnan(only_3["APm"]) and not np.isnan(only_3["APl"])


def test_quiet_unless_verbose(gt_path, capsys):
    evaluate_coco_keypoints(gt_path, _gt_as_results(gt_path))
    assert capsys.readouterr().out == ""
    evaluate_coco_keypoints(gt_path, _gt_as_results(gt_path), verbose=True)
    assert "Average Precision" in capsys.readouterr().out


def test_empty_results_are_zeros(gt_path):
    assert evaluate_coco_keypoints(gt_path, []) == dict.fromkeys(METRIC_NAMES, 0.0)


def test_bad_inputs_raise_data_error(gt_path, tmp_path):
    with pytest.raises(DataError, match="missing.json"):
        evaluate_coco_keypoints(tmp_path / "missing.json", _gt_as_results(gt_path))
    stray = _gt_as_results(gt_path)
    stray[0]["image_id"] = 99
    with pytest.raises(DataError, match="99"):
        evaluate_coco_keypoints(gt_path, stray)


def test_rescoring_formula():
    keypoint_scores = np.array([[0.9, 0.5, 0.1, 0.2], [0.1, 0.05, 0.2, 0.0], [1.0, 1.0, 1.0, 0.3]])
    box_scores = np.array([0.8, 0.9, 0.5])
    # Only scores strictly above 0.2 count: (0.9 + 0.5) / 2, none (-> 0), (1 + 1 + 1 + 0.3) / 4.
    expected = [0.8 * 0.7, 0.0, 0.5 * 0.825]
    np.testing.assert_allclose(rescore(keypoint_scores, box_scores), expected)
    results = make_results([7, 7, 8], np.zeros((3, 4, 2)), keypoint_scores, box_scores)
    np.testing.assert_allclose([r["score"] for r in results], expected)
    assert results[0]["keypoints"][:3] == [0.0, 0.0, 0.9]
    assert set(results[0]) == {"image_id", "category_id", "keypoints", "score"}


def test_oks_nms_removes_a_duplicate():
    rng = np.random.default_rng(1)
    person = rng.uniform(0, 100, (K, 2))
    other = person + 300  # far away
    keypoints = np.stack([person, person + 0.5, other, person])
    scores = np.full((4, K), 0.9)
    boxes = np.array([0.9, 0.8, 0.7, 0.6])
    areas = np.full(4, 100.0 * 100.0)
    results = make_results([1, 1, 1, 2], keypoints, scores, boxes, areas=areas, nms_threshold=0.9)
    kept = sorted((r["image_id"], round(r["score"], 6)) for r in results)
    # The near-copy on image 1 goes; the far person and the same pose on image 2 stay.
    assert kept == [(1, 0.63), (1, 0.81), (2, 0.54)]
    all_kept = make_results([1, 1, 1, 2], keypoints, scores, boxes, areas=areas)
    assert len(oks_nms(all_kept, threshold=1.0)) == 4


def test_results_json_is_written_whole(tmp_path):
    results = make_results([1], np.ones((1, K, 2)), np.ones((1, K)), np.ones(1))
    path = tmp_path / "out" / "results.json"
    write_results_json(results, path)
    assert json.loads(path.read_text()) == results
    assert not list(path.parent.glob("*.tmp"))
