"""Weak/strong unlabelled views and the matrix between them (data/unlabeled.py)."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from trspose.data.coco import PersonInstance
from trspose.data.codec import HeatmapCodec
from trspose.data.datasets import denormalize
from trspose.data.geometry import affine_points, invert_affine, warp_heatmaps
from trspose.data.keypoints import COCO17
from trspose.data.transforms import AugmentConfig, StrongAugmentConfig
from trspose.data.unlabeled import UnlabeledViewsDataset, collate_unlabeled, view_to_view_heatmap_matrix

torch.set_num_threads(1)


DOT = (58.0, 74.0)  # (x, y) image px, off the box centre (70, 90) so views move it


@pytest.fixture
def dot_image(tmp_path):
    image = np.zeros((160, 140, 3), dtype=np.uint8)
    cv2.circle(image, (int(DOT[0]), int(DOT[1])), 2, (255, 255, 255), -1)
    image = cv2.GaussianBlur(image, (0, 0), 1.0)
    path = tmp_path / "dot.png"
    cv2.imwrite(str(path), image)
    keypoints = np.ones((17, 3), dtype=np.float32)  # ignored on unlabelled data
    return PersonInstance(7, 9, path, np.array([40, 50, 60, 80], dtype=np.float32), keypoints)


def brightest(view):
    gray = denormalize(view).astype(float).sum(axis=-1)  # (H, W)
    y, x = np.unravel_index(np.argmax(gray), gray.shape)
    return np.array([x, y], dtype=float)


def peak(heatmap):
    flat = int(torch.argmax(heatmap))
    return np.array([flat % heatmap.shape[-1], flat // heatmap.shape[-1]], dtype=float)


def test_weak_to_strong_aligns_teacher_heatmaps(dot_image):
    input_size, channel = (64, 48), 9  # left wrist
    strong = StrongAugmentConfig(color_jitter=0.0, blur_prob=0.0, noise_prob=0.0, cutout_prob=0.0)
    dataset = UnlabeledViewsDataset(
        [dot_image] * 10, COCO17, input_size, AugmentConfig(rotation_deg=20), strong, seed=1
    )
    samples = [dataset[i] for i in range(10)]
    batch = collate_unlabeled(samples)
    assert batch.weak.shape == batch.strong.shape == (10, 3, 64, 48) and batch.flipped.dtype == torch.bool
    codec = HeatmapCodec(input_size, (16, 12), sigma=1.0)
    flip_index = COCO17.flip_index()
    checked = []
    for b in range(10):
        weak_dot = affine_points([DOT], invert_affine(samples[b].weak_crop_to_image))[0]
        strong_dot = affine_points([DOT], invert_affine(samples[b].strong_crop_to_image[0]))[0]
        inside = lambda p: 2 <= p[0] < 46 and 2 <= p[1] < 62  # noqa: E731
        if not (inside(weak_dot) and inside(strong_dot)):
            continue
        assert np.abs(brightest(batch.weak[b]) - weak_dot).max() <= 1.0  # the views show the dot where the
        assert np.abs(brightest(batch.strong[b]) - strong_dot).max() <= 1.0  # matrices say it is
        keypoints = np.zeros((17, 3), dtype=np.float32)
        keypoints[channel] = [*weak_dot, 2]
        teacher = torch.from_numpy(codec.encode(keypoints)[0])[None]  # (1, K, h, w)
        warped = warp_heatmaps(teacher, batch.weak_to_strong[b : b + 1], flip_index, batch.flipped[b : b + 1])
        expected_channel = flip_index[channel] if batch.flipped[b] else channel
        assert float(warped[0, expected_channel].max()) > 0.5
        assert float(warped[0, channel if batch.flipped[b] else flip_index[channel]].max()) == 0.0
        assert np.abs(peak(warped[0, expected_channel]) - strong_dot / 4.0).max() <= 1.0
        decoded, _ = codec.decode(warped)  # sub-pixel: within one input px of the dot
        assert np.abs(decoded[0, expected_channel].numpy() - strong_dot).max() <= 1.0
        checked.append(bool(batch.flipped[b]))
    assert len(checked) >= 6 and True in checked and False in checked  # flipped and unflipped pairs


def test_unlabeled_views_are_deterministic_per_draw(dot_image):
    dataset = UnlabeledViewsDataset(
        [dot_image], COCO17, (64, 48), AugmentConfig(), StrongAugmentConfig(), seed=0
    )
    a, b = dataset[0], dataset[0]
    torch.testing.assert_close(a.strong, b.strong)
    np.testing.assert_allclose(a.weak_to_strong, b.weak_to_strong)
    assert not np.allclose(
        dataset[(0, 4)].weak_to_strong, a.weak_to_strong
    )  # another draw of the same person
    batch = collate_unlabeled([a, b]).to("cpu")
    assert batch.weak_to_strong.shape == (2, 2, 3) and batch.ann_id.tolist() == [9, 9]


def test_several_strong_views_share_one_weak_view_and_the_first_is_the_single_views(dot_image):
    strong = StrongAugmentConfig(color_jitter=0.0, blur_prob=0.0, noise_prob=0.0, cutout_prob=0.0)
    make = lambda views: UnlabeledViewsDataset(  # noqa: E731
        [dot_image] * 4, COCO17, (64, 48), AugmentConfig(rotation_deg=20), strong, seed=3, strong_views=views
    )
    one, three = make(1), make(3)
    batch = collate_unlabeled([three[(i, i)] for i in range(4)])
    single = collate_unlabeled([one[(i, i)] for i in range(4)])
    assert batch.weak.shape == (4, 3, 64, 48) and batch.strong.shape == (12, 3, 64, 48)
    assert batch.weak_to_strong.shape == (12, 2, 3) and batch.flipped.shape == (12,) and len(batch) == 4
    torch.testing.assert_close(batch.weak, single.weak)  # the weak view does not depend on the strong ones
    torch.testing.assert_close(batch.strong[::3], single.strong)  # view 0 is the one-view run's strong view
    torch.testing.assert_close(batch.weak_to_strong[::3], single.weak_to_strong)
    for person in range(4):  # the three views of one person are three different draws
        matrices = batch.weak_to_strong[3 * person : 3 * person + 3]
        assert not torch.allclose(matrices[0], matrices[1]) and not torch.allclose(matrices[1], matrices[2])
    # each view shows the dot where its own crop matrix says, and its weak_to_strong is made of that matrix
    sample = three[(0, 0)]
    for view in range(3):
        strong_dot = affine_points([DOT], invert_affine(sample.strong_crop_to_image[view]))[0]
        if 2 <= strong_dot[0] < 46 and 2 <= strong_dot[1] < 62:
            assert np.abs(brightest(sample.strong[view]) - strong_dot).max() <= 1.0
        expected = view_to_view_heatmap_matrix(
            sample.weak_crop_to_image, sample.strong_crop_to_image[view], (64, 48), (16, 12)
        )
        np.testing.assert_allclose(sample.weak_to_strong[view], expected, atol=1e-5)


def test_unlabeled_pool_includes_train_people_only_when_asked_and_jitters_boxes_by_seed():
    from trspose.data.unlabeled import unlabeled_pool

    box = np.array([10, 20, 40, 80], dtype=np.float32)
    train = [PersonInstance(1, i, Path(f"{i}.jpg"), box, np.zeros((17, 3), np.float32)) for i in range(1, 4)]
    extra = [PersonInstance(1, 1, Path("x.jpg"), box, np.zeros((17, 3), np.float32))]
    assert unlabeled_pool(train) == train and unlabeled_pool(train, include_train=False) == []
    both = unlabeled_pool(train, extra)
    assert [p.ann_id for p in both] == [1, 2, 3, 4]  # the extra person's ids move past the training split's
    assert [p.ann_id for p in unlabeled_pool(train, extra, include_train=False)] == [4]
    jittered = unlabeled_pool(train, box_jitter=0.1, seed=5)
    assert (
        all(np.abs(p.box - box).max() <= 0.1 * 80 + 1e-4 for p in jittered)
        and jittered[0].box.tolist() != box.tolist()
    )
    assert [p.box.tolist() for p in unlabeled_pool(train, box_jitter=0.1, seed=5)] == [
        p.box.tolist() for p in jittered
    ]
