"""Heatmap codec: Gaussian targets, DARK / argmax round trips, flip-back."""

import numpy as np
import pytest
import torch

from trspose.data.codec import HeatmapCodec, blur_kernel_size, flip_back, heatmap_size_for, valid_input_size
from trspose.data.keypoints import COCO17

torch.set_num_threads(1)


@pytest.fixture
def codec():
    return HeatmapCodec((256, 192), (64, 48), sigma=2.0)


def test_encode_places_gaussian_and_weights(codec):
    keypoints = np.zeros((17, 3), dtype=np.float32)
    keypoints[0] = [40.0, 80.0, 2]  # heatmap (10, 20)
    keypoints[1] = [40.0, 80.0, 0]  # not labelled
    keypoints[2] = [200.0, 80.0, 2]  # outside the crop width 192
    keypoints[3] = [-1.9, 4.0, 1]  # heatmap x = -0.475: still inside pixel 0
    heatmaps, weight = codec.encode(keypoints)
    assert heatmaps.shape == (17, 64, 48) and heatmaps.dtype == np.float32
    np.testing.assert_array_equal(weight[:4], [1, 0, 0, 1])
    assert heatmaps[0, 20, 10] == pytest.approx(1.0)
    assert heatmaps[0, 20, 11] == pytest.approx(np.exp(-1 / 8), rel=1e-5)  # sigma 2
    assert heatmaps[1].max() == 0 and heatmaps[2].max() == 0 and weight[4:].sum() == 0


def test_dark_round_trip_is_subpixel(codec):
    rng = np.random.default_rng(0)
    keypoints = np.ones((17, 3), dtype=np.float32)
    keypoints[:, 0] = rng.uniform(16, 176, 17)
    keypoints[:, 1] = rng.uniform(16, 240, 17)
    heatmaps, _ = codec.encode(keypoints)
    coords, scores = codec.decode(torch.from_numpy(heatmaps)[None])
    error_heatmap_px = np.abs(coords[0].numpy() - keypoints[:, :2]) / 4.0
    assert error_heatmap_px.max() < 0.1
    argmax_coords, _ = codec.decode(torch.from_numpy(heatmaps)[None], decode_method="argmax")
    assert np.abs(argmax_coords[0].numpy() - keypoints[:, :2]).mean() > 4 * error_heatmap_px.mean()
    assert scores.shape == (1, 17) and float(scores.min()) > 0.88  # peak of a sub-pixel Gaussian


def test_argmax_round_trip_of_integer_points():
    codec = HeatmapCodec((64, 48), (16, 12), sigma=1.5)
    keypoints = np.array(
        [[x * 4.0, y * 4.0, 1] for x, y in [(0, 0), (11, 15), (5, 7), (3, 14)]], dtype=np.float32
    )
    heatmaps, weight = codec.encode(keypoints)
    coords, scores = codec.decode(torch.from_numpy(np.stack([heatmaps, heatmaps])), decode_method="argmax")
    np.testing.assert_allclose(coords[1].numpy(), keypoints[:, :2])
    np.testing.assert_allclose(scores.numpy(), 1.0)
    # DARK leaves border peaks alone, so it is exact there too.
    dark, _ = codec.decode(torch.from_numpy(heatmaps)[None], decode_method="dark")
    np.testing.assert_allclose(dark[0].numpy(), keypoints[:, :2], atol=1e-3)


def test_decode_empty_heatmaps_gives_zero_scores(codec):
    coords, scores = codec.decode(torch.zeros(2, 17, 64, 48))
    assert coords.shape == (2, 17, 2) and torch.all(scores == 0) and torch.isfinite(coords).all()


def test_flip_back_swaps_channels_and_width():
    index = COCO17.flip_index()
    heatmaps = torch.rand(2, 17, 8, 6)
    back = flip_back(heatmaps, index)
    torch.testing.assert_close(back[:, 1], heatmaps[:, 2].flip(-1))
    torch.testing.assert_close(flip_back(back, index), heatmaps)
    np.testing.assert_allclose(flip_back(heatmaps.numpy(), index), back.numpy())


def test_bad_arguments_and_kernel_size(codec):
    assert blur_kernel_size(2.0) == 11
    with pytest.raises(ValueError, match="decode_method"):
        codec.decode(torch.zeros(1, 17, 64, 48), decode_method="soft")


def test_heatmaps_are_a_quarter_of_inputs_that_are_multiples_of_32():
    assert heatmap_size_for((256, 192)) == (64, 48) and heatmap_size_for((128, 96)) == (32, 24)
    assert valid_input_size((256, 192)) and valid_input_size((32, 64))
    assert not any(valid_input_size(size) for size in [(250, 192), (0, 32), (-32, 32)])
