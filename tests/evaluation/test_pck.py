"""PCK against hand-computed values."""

import numpy as np
import pytest

from trspose.evaluation import pck


def test_pck_hand_computed():
    gt = np.zeros((2, 3, 2))
    pred = np.array(
        [
            [[3.0, 4.0], [0.0, 6.0], [1.0, 0.0]],  # distances 5, 6, 1
            [[0.0, 2.0], [0.0, 0.5], [30.0, 40.0]],  # distances 2, 0.5, 50
        ]
    )
    visible = np.array([[True, True, True], [True, False, True]])
    normaliser = np.array([100.0, 20.0])  # thresholds at 0.05: 5.0 and 1.0 pixels
    overall, per_keypoint = pck(pred, gt, visible, normaliser, threshold=0.05)
    # person 0: 5 <= 5 yes, 6 no, 1 yes; person 1: 2 no, (hidden), 50 no -> 2 of 5 visible
    assert overall == pytest.approx(2 / 5)
    np.testing.assert_allclose(per_keypoint, [1 / 2, 0 / 1, 1 / 2])


def test_pck_never_visible_keypoint_is_nan_and_nothing_visible_is_zero():
    gt = np.zeros((1, 2, 2))
    overall, per_keypoint = pck(gt, gt, np.array([[True, False]]), np.array([10.0]))
    assert overall == 1.0
    assert per_keypoint[0] == 1.0 and np.isnan(per_keypoint[1])
    overall, _ = pck(gt, gt, np.zeros((1, 2), bool), np.array([10.0]))
    assert overall == 0.0


def test_pck_shape_mismatch_raises():
    with pytest.raises(ValueError, match="normaliser"):
        pck(np.zeros((2, 3, 2)), np.zeros((2, 3, 2)), np.ones((2, 3), bool), np.ones(3))


def test_pckh_normalises_by_each_persons_head_segment_and_skips_people_without_one():
    from trspose.data.keypoints import SPECS
    from trspose.evaluation.pck import head_segment, pckh

    assert head_segment(SPECS["mpii16"].names) == (9, 8)  # head_top, upper_neck
    assert head_segment(SPECS["aic14"].names) == (12, 13) and head_segment(SPECS["coco17"].names) is None
    gt = np.zeros((3, 3, 2))
    gt[:, 0] = [0.0, 0.0]  # head top
    gt[:, 1] = [0.0, 10.0]  # neck: a 10-px head segment
    gt[:, 2] = [20.0, 20.0]
    pred = gt.copy()
    pred[0, 2] += [4.0, 0.0]  # within 0.5 x 10 px
    pred[1, 2] += [6.0, 0.0]  # not
    visible = np.ones((3, 3), bool)
    visible[2, 0] = False  # no head top: this person cannot be scored
    pred[2, 2] += [100.0, 0.0]
    overall, per_keypoint = pckh(pred, gt, visible, (0, 1))
    assert per_keypoint.tolist() == [1.0, 1.0, 0.5] and overall == 5 / 6

    nobody = visible.copy()
    nobody[:, 1] = False  # no neck labelled anywhere: PCKh is undefined, not 0
    overall, per_keypoint = pckh(pred, gt, nobody, (0, 1))
    assert np.isnan(overall) and np.isnan(per_keypoint).all()
