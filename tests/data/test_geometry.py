"""Geometry: boxes, HRNet affine, flips and heatmap warping, checked against values."""

import math

import cv2
import numpy as np
import pytest
import torch

from trspose.data.geometry import (
    affine_points,
    box_to_center_scale,
    compose_affine,
    get_affine_transform,
    horizontal_flip_matrix,
    invert_affine,
    warp_heatmaps,
)

torch.set_num_threads(1)


def hrnet_affine(center, scale_w, rot, out_h, out_w, shift=(0.0, 0.0), scale_h=None):
    """HRNet's three-point construction, rewritten here as an independent reference."""
    rad = math.radians(rot)
    src_dir = np.array([0.5 * scale_w * math.sin(rad), -0.5 * scale_w * math.cos(rad)])
    dst_dir = np.array([0.0, -0.5 * out_w])
    scale = np.array([scale_w, scale_h or scale_w])
    src0 = np.asarray(center) + scale * np.asarray(shift)
    dst0 = np.array([out_w * 0.5, out_h * 0.5])
    third = lambda a, b: b + np.array([-(a - b)[1], (a - b)[0]])  # noqa: E731
    src = np.float32([src0, src0 + src_dir, third(src0, src0 + src_dir)])
    dst = np.float32([dst0, dst0 + dst_dir, third(dst0, dst0 + dst_dir)])
    return cv2.getAffineTransform(src, dst)


def test_box_to_center_scale_pads_to_aspect_ratio():
    center, scale = box_to_center_scale([10, 20, 40, 60], (256, 192))
    np.testing.assert_allclose(center, [30, 50])
    np.testing.assert_allclose(scale, [45 * 1.25, 60 * 1.25], rtol=1e-6)  # widened to 3:4
    center, scale = box_to_center_scale([0, 0, 90, 30], 256 / 192, padding=1.0)
    np.testing.assert_allclose(scale, [90, 120], rtol=1e-6)  # heightened
    assert center.dtype == np.float32 and scale.shape == (2,)


def test_box_corners_land_on_crop_corners():
    box = np.array([30.0, 40.0, 60.0, 80.0])
    center, scale = box_to_center_scale(box, (64, 48), padding=1.0)
    matrix = get_affine_transform(center, scale, 0.0, (64, 48))
    corners = np.array([[30.0, 40.0], [90.0, 120.0], [60.0, 80.0]])
    np.testing.assert_allclose(affine_points(corners, matrix), [[0, 0], [48, 64], [24, 32]], atol=1e-4)


@pytest.mark.parametrize("rot,shift", [(0.0, (0, 0)), (30.0, (0, 0)), (-75.0, (0.1, -0.2))])
def test_affine_matches_hrnet_construction(rot, shift):
    center, scale = np.array([100.0, 80.0]), np.array([120.0, 160.0])
    ours = get_affine_transform(center, scale, rot, (256, 192), shift=shift)
    reference = hrnet_affine(center, 120.0, rot, 256, 192, shift=shift, scale_h=160.0)
    np.testing.assert_allclose(ours, reference, atol=1e-3)
    inverse = get_affine_transform(center, scale, rot, (256, 192), shift=shift, inverse=True)
    np.testing.assert_allclose(compose_affine(inverse, ours), np.eye(3)[:2], atol=1e-5)


def test_compose_and_invert():
    a = np.array([[2.0, 0.0, 1.0], [0.0, 3.0, -2.0]])
    b = np.array([[0.0, -1.0, 5.0], [1.0, 0.0, 0.0]])
    point = np.array([[1.5, -2.0]])
    np.testing.assert_allclose(
        affine_points(point, compose_affine(a, b)), affine_points(affine_points(point, b), a), atol=1e-5
    )
    np.testing.assert_allclose(affine_points(affine_points(point, a), invert_affine(a)), point, atol=1e-5)


def gaussian_maps(points, height=16, width=12, sigma=1.5):
    ys, xs = np.mgrid[0:height, 0:width]
    maps = [np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2)) for x, y in points]
    return torch.tensor(np.stack(maps)[None], dtype=torch.float32)  # (1, K, h, w)


def peak(heatmap):
    flat = int(torch.argmax(heatmap))
    return flat % heatmap.shape[-1], flat // heatmap.shape[-1]


def test_warp_heatmaps_identity_translation_and_zero_fill():
    maps = gaussian_maps([(4, 5), (7, 9)])
    identity = torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]]])
    torch.testing.assert_close(warp_heatmaps(maps, identity), maps, atol=1e-5, rtol=0)
    shift = np.array([[[1.0, 0, 3.0], [0, 1.0, -2.0]]])
    warped = warp_heatmaps(maps, shift)
    assert peak(warped[0, 0]) == (7, 3) and peak(warped[0, 1]) == (10, 7)
    assert torch.all(warped[0, :, :, :3] == 0)  # columns that came from outside the source
    torch.testing.assert_close(warped[0, 0, 3, 7], maps[0, 0, 5, 4])


def test_warp_heatmaps_flip_permutes_channels():
    index = np.array([1, 0, 2])
    maps = gaussian_maps([(2, 5), (3, 9), (6, 6)])
    mirror = np.stack([horizontal_flip_matrix(12)] * 2)
    both = torch.cat([maps, maps])
    warped = warp_heatmaps(both, mirror, index, torch.tensor([True, False]))
    # flipped sample: channel 0 holds the mirrored channel-1 peak (3, 9) -> (8, 9)
    assert peak(warped[0, 0]) == (8, 9) and peak(warped[0, 1]) == (9, 5) and peak(warped[0, 2]) == (5, 6)
    torch.testing.assert_close(warped[0, 0], maps[0, 1].flip(-1), atol=1e-5, rtol=0)
    assert peak(warped[1, 0]) == (9, 5)  # not flipped: channels stay
