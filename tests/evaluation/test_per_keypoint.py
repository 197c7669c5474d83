"""Per-keypoint metrics and the pairing of predictions with people (evaluation/per_keypoint.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trspose.data.coco import PersonInstance
from trspose.data.keypoints import COCO17
from trspose.evaluation.inference import Predictions
from trspose.evaluation.per_keypoint import match_people, per_keypoint_metrics


def _people(n: int = 2) -> list[PersonInstance]:
    from tests.stick_figures import TEMPLATE

    people = []
    for i in range(n):
        points = TEMPLATE * [60, 120] + [100 * i, 0]
        keypoints = np.concatenate([points, np.full((17, 1), 2.0)], axis=1).astype(np.float32)
        people.append(PersonInstance(image_id=1, ann_id=i + 1, image_path=Path("x.png"),
                                     box=np.array([100 * i, 0, 60, 120], np.float32), keypoints=keypoints,
                                     area=60 * 120.0))  # fmt: skip
    return people


def _predictions(keypoints: list[np.ndarray]) -> Predictions:
    n = len(keypoints)
    return Predictions(ann_id=np.arange(n) + 101, image_id=np.ones(n, int), keypoints=np.stack(keypoints),
                       scores=np.ones((n, 17), np.float32), box_score=np.ones(n, np.float32))  # fmt: skip


def test_per_keypoint_numbers_come_out_as_constructed():
    people = _people()
    left_wrist, right_wrist, left_knee = (
        COCO17.names.index("left_wrist"),
        COCO17.names.index("right_wrist"),
        13,
    )
    first = people[0].keypoints[:, :2].copy()
    first[left_knee] += [9.0, 0.0]  # 9 px off: beyond 0.05 x 120 = 6 px, within 0.1 x 120 = 12 px
    second = people[1].keypoints[:, :2].copy()
    second[[left_wrist, right_wrist]] = second[[right_wrist, left_wrist]]  # left and right wrists swapped
    predictions = _predictions([second, first])  # not in ground-truth order: matching finds the pairs
    matched = match_people(predictions, people, COCO17.sigmas)
    assert sorted(matched.ann_id.tolist()) == [1, 2]
    metrics = per_keypoint_metrics(matched, COCO17.sigmas, COCO17.flip_index(), (256, 192))
    assert metrics["pck@0.05"][left_knee] == 0.5 and metrics["pck@0.1"][left_knee] == 1.0
    crop_px_per_image_px = 192 / (120 / (256 / 192) * 1.25)  # the 60x120 box's crop is 120 * 1.25 tall
    assert metrics["error_px"][left_knee] == pytest.approx(9.0 * crop_px_per_image_px / 2)
    assert metrics["swap_rate"][left_wrist] == metrics["swap_rate"][right_wrist] == 0.5
    untouched = [k for k in range(17) if k not in (left_wrist, right_wrist, left_knee)]
    assert np.all(metrics["oks"][untouched] == 1.0) and np.all(metrics["swap_rate"][untouched][1:] == 0.0)
    assert np.isnan(metrics["swap_rate"][0])  # the nose has no left/right partner


def test_a_prediction_that_drifted_onto_a_neighbour_stays_wrong_with_ground_truth_boxes():
    from trspose.evaluation.per_keypoint import pair_by_annotation, unmatched

    people = _people()
    drifted = _predictions(
        [people[1].keypoints[:, :2], people[1].keypoints[:, :2]]
    )  # both on the second person
    drifted.ann_id[:] = [1, 2]  # made on the boxes of person 1 and person 2
    by_box = pair_by_annotation(drifted, people, COCO17.sigmas)
    assert by_box.ann_id.tolist() == [1, 2] and by_box.oks[0] < 0.01 and by_box.oks[1] == 1.0
    by_oks = match_people(drifted, people, COCO17.sigmas)  # detector-box matching pairs it with person 2
    assert by_oks.ann_id.tolist() == [2] and [inst.ann_id for inst in unmatched(by_oks, people)] == [1]
