"""Pseudo-targets: warping into the strong view, confidence masks, peaks (methods/pseudo_labels.py)."""

import numpy as np
import torch

from trspose.data.codec import argmax_heatmaps
from trspose.methods.pseudo_labels import make_pseudo_target


def test_pseudo_target_warping_keeps_peaks_and_masks_low_confidence():
    heatmaps = torch.zeros(1, 17, 16, 16)
    heatmaps[0, 5, 4, 3] = 0.9  # left shoulder at (x=3, y=4), confident
    heatmaps[0, 6, 8, 8] = 0.05  # right shoulder, not confident
    shift = torch.tensor([[[1.0, 0.0, 2.0], [0.0, 1.0, 1.0]]])  # +2 px in x, +1 px in y
    target = make_pseudo_target(heatmaps, shift, torch.tensor([False]), None, threshold=0.2)
    peaks, _ = argmax_heatmaps(target.heatmaps)
    assert peaks[0, 5].tolist() == [5.0, 5.0]
    assert target.weight[0, 5] == 1 and target.weight[0, 6] == 0


def test_teacher_peaks_map_back_to_the_joint_in_input_pixels():
    """TRS places Keypoint-Mix patches and joint cutouts at the codec's heatmap_to_input of the peaks: the
    inverse of its encoding."""
    from trspose.data.codec import HeatmapCodec

    codec = HeatmapCodec(input_size=(64, 48), heatmap_size=(16, 12), sigma=2.0)
    keypoints = np.zeros((17, 3), np.float32)
    keypoints[:, 2] = 2
    keypoints[:, 0], keypoints[:, 1] = 4.0 * (np.arange(17) % 12), 4.0 * (np.arange(17) % 16)
    heatmaps = torch.from_numpy(codec.encode(keypoints)[0])[None]  # (1, 17, 16, 12)
    identity = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    target = make_pseudo_target(heatmaps, identity, torch.tensor([False]), None, threshold=0.5)
    torch.testing.assert_close(codec.heatmap_to_input(target.peaks[0]), torch.from_numpy(keypoints[:, :2]))


def test_keep_fraction_keeps_the_most_confident_pseudo_keypoints():
    heatmaps = torch.zeros(2, 4, 8, 8)
    peaks = torch.tensor([[0.9, 0.05, 0.5, 0.3], [0.8, 0.6, 0.2, 0.7]])
    heatmaps[:, :, 4, 4] = peaks
    identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand(2, 2, 3)
    no_flip = torch.tensor([False, False])
    everything = make_pseudo_target(heatmaps, identity, no_flip, None, threshold=0.1)
    assert everything.weight.tolist() == [[1, 0, 1, 1], [1, 1, 1, 1]]  # the threshold alone drops 0.05
    half = make_pseudo_target(heatmaps, identity, no_flip, None, threshold=0.1, keep_fraction=0.5)
    # of the 7 above the threshold, the upper half by confidence (the median, 0.6, included)
    assert half.weight.tolist() == [[1, 0, 0, 0], [1, 1, 0, 1]]
    nothing_above = make_pseudo_target(heatmaps, identity, no_flip, None, threshold=0.95, keep_fraction=0.5)
    assert nothing_above.weight.sum() == 0


def test_each_persons_heatmaps_are_warped_into_each_of_its_strong_views():
    heatmaps = torch.zeros(2, 4, 8, 8)
    heatmaps[0, 1, 2, 3] = 0.9  # person 0: keypoint 1 at (x=3, y=2)
    heatmaps[1, 2, 5, 4] = 0.8  # person 1: keypoint 2 at (x=4, y=5)
    shift = lambda dx: torch.tensor([[1.0, 0.0, dx], [0.0, 1.0, 0.0]])  # noqa: E731
    views = torch.stack(
        [shift(0.0), shift(1.0), shift(2.0), shift(3.0)]
    )  # two views per person, person by person
    flipped = torch.tensor([False, True, False, False])
    target = make_pseudo_target(heatmaps, views, flipped, torch.tensor([0, 2, 1, 3]), threshold=0.1)
    assert target.heatmaps.shape == (4, 4, 8, 8) and target.weight.shape == (4, 4)
    assert target.peaks[0, 1].tolist() == [3.0, 2.0] and target.weight[0].tolist() == [0, 1, 0, 0]
    # person 0's second view is shifted by 1 and mirrored: keypoint 1 trades places with its partner 2
    assert target.peaks[1, 2].tolist() == [4.0, 2.0] and target.weight[1].tolist() == [0, 0, 1, 0]
    assert target.peaks[2, 2].tolist() == [6.0, 5.0] and target.peaks[3, 2].tolist() == [7.0, 5.0]
    assert target.confidence[3, 2] == torch.tensor(0.8)
