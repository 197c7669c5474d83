"""Top-down transforms and the labelled dataset: crops, keypoints, flips, half-body, determinism."""

import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from trspose.data.coco import PersonInstance
from trspose.data.codec import HeatmapCodec
from trspose.data.datasets import TopDownDataset, collate_pose, denormalize, normalize_image
from trspose.data.geometry import affine_points
from trspose.data.keypoints import COCO17
from trspose.data.transforms import AugmentConfig, StrongAugmentConfig, TopDownTransform

torch.set_num_threads(1)
INPUT = (64, 48)
FIXED = dict(scale_factor=0.0, rotation_prob=0.0, half_body_prob=0.0)


def textured_image(height=120, width=100):
    rng = np.random.default_rng(3)
    small = rng.integers(0, 255, (height // 4, width // 4, 3), dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def make_instance(path=Path("unused.png"), box=(20.0, 10.0, 45.0, 60.0)):
    rng = np.random.default_rng(1)
    keypoints = np.zeros((17, 3), dtype=np.float32)
    keypoints[:, 0] = rng.uniform(box[0], box[0] + box[2], 17)
    keypoints[:, 1] = rng.uniform(box[1], box[1] + box[3], 17)
    keypoints[:, 2] = 2
    return PersonInstance(1, 5, path, np.array(box, dtype=np.float32), keypoints, 1.0, 1000.0)


def test_eval_crop_maps_box_to_crop_and_back():
    instance = make_instance()
    instance.keypoints[0] = [
        20.0 - 5.625 + 0.01,
        10.0 - 7.5 + 0.01,
        2,
    ]  # padded box corner (45x60 -> 56.25x75)
    instance.keypoints[1] = [200.0, 10.0, 2]  # far outside the crop
    crop, keypoints, crop_to_image, flipped = TopDownTransform(INPUT, COCO17)(
        textured_image(), instance, None
    )
    assert crop.shape == (64, 48, 3) and crop.dtype == np.uint8 and not flipped
    np.testing.assert_allclose(keypoints[0], [0.01 * 48 / 56.25, 0.01 * 64 / 75, 2], atol=1e-4)
    assert keypoints[1, 2] == 0
    np.testing.assert_allclose(
        affine_points(keypoints[2:, :2], crop_to_image), instance.keypoints[2:, :2], atol=1e-3
    )
    np.testing.assert_allclose(
        affine_points([[48, 64]], crop_to_image), [[20 + 45 + 5.625, 10 + 60 + 7.5]], atol=1e-3
    )


def test_flip_mirrors_crop_and_swaps_keypoints():
    image, instance = textured_image(), make_instance()
    plain = TopDownTransform(INPUT, COCO17, AugmentConfig(flip_prob=0.0, **FIXED))(
        image, instance, np.random.default_rng(0)
    )
    mirrored = TopDownTransform(INPUT, COCO17, AugmentConfig(flip_prob=1.0, **FIXED))(
        image, instance, np.random.default_rng(0)
    )
    assert mirrored.flipped and not plain.flipped
    difference = np.abs(mirrored.crop.astype(int) - np.fliplr(plain.crop).astype(int))
    assert difference.max() <= 1  # cv2's fixed-point bilinear weights may round differently
    expected = plain.keypoints[COCO17.flip_index()]  # the mirrored left wrist is where the right one was
    expected[:, 0] = 47 - expected[:, 0]  # x -> W - 1 - x
    np.testing.assert_allclose(mirrored.keypoints, expected, atol=1e-4)
    # the mirrored crop's keypoints still map back onto the (swapped) image keypoints
    back = affine_points(mirrored.keypoints[:, :2], mirrored.crop_to_image)
    np.testing.assert_allclose(back, instance.keypoints[COCO17.flip_index(), :2], atol=1e-3)


def test_random_augment_is_reproducible_and_consistent():
    transform = TopDownTransform(INPUT, COCO17, AugmentConfig(color_jitter=0.3))
    image, instance = textured_image(), make_instance()
    first = transform(image, instance, np.random.default_rng(7))
    again = transform(image, instance, np.random.default_rng(7))
    np.testing.assert_array_equal(first.crop, again.crop)
    inside = first.keypoints[:, 2] > 0
    back = affine_points(first.keypoints[inside, :2], first.crop_to_image)
    source = instance.keypoints[COCO17.flip_index()] if first.flipped else instance.keypoints
    np.testing.assert_allclose(back, source[inside, :2], atol=1e-3)


def test_half_body_crops_around_upper_or_lower_body():
    transform = TopDownTransform(
        INPUT, COCO17, AugmentConfig(half_body_prob=1.0, flip_prob=0.0, scale_factor=0.0, rotation_prob=0.0)
    )
    instance = make_instance()
    instance.keypoints[:11, :2] = [40.0, 20.0]  # upper body bunched at the top ...
    instance.keypoints[:11, :2] += np.random.default_rng(0).uniform(-3, 3, (11, 2))
    instance.keypoints[11:, :2] = [45.0, 60.0]  # ... lower body lower down
    instance.keypoints[11:, :2] += np.random.default_rng(1).uniform(-3, 3, (6, 2))
    centers = set()
    for seed in range(12):
        result = transform(textured_image(), instance, np.random.default_rng(seed))
        center = affine_points([[24.0, 32.0]], result.crop_to_image)[0]
        part = slice(0, 11) if center[1] < 40 else slice(11, 17)
        np.testing.assert_allclose(center, instance.keypoints[part, :2].mean(axis=0), atol=1e-3)
        centers.add(part.start)
    assert centers == {0, 11}


def test_strong_augment_cuts_out_around_points():
    config = StrongAugmentConfig(
        blur_prob=0.0,
        noise_prob=0.0,
        color_jitter=0.0,
        cutout_prob=1.0,
        cutout_count=1,
        cutout_size=0.25,
        **FIXED,
        flip_prob=0.0,
    )
    image = np.full((120, 100, 3), 200, dtype=np.uint8)
    instance = make_instance()
    result = TopDownTransform(INPUT, COCO17, config)(
        image, instance, np.random.default_rng(0), cutout_points=np.array([[42.5, 40.0]])
    )
    center = np.round(
        affine_points([[42.5, 40.0]], np.linalg.inv(np.vstack([result.crop_to_image, [0, 0, 1]]))[:2])[0]
    ).astype(int)
    assert result.crop[center[1], center[0]].max() == 0  # black square on the point
    assert (result.crop == 0).all(axis=2).sum() == pytest.approx(12 * 12, abs=30)
    with pytest.raises(ValueError, match="flip_prob"):
        AugmentConfig(flip_prob=1.5)


def test_dataset_samples_batches_and_draws(tmp_path):
    path = tmp_path / "person.png"
    cv2.imwrite(str(path), cv2.cvtColor(textured_image(), cv2.COLOR_RGB2BGR))
    instances = [make_instance(path), make_instance(path, box=(5.0, 5.0, 50.0, 90.0))]
    codec = HeatmapCodec(INPUT, (16, 12), sigma=1.0)
    dataset = TopDownDataset(
        instances, COCO17, codec, TopDownTransform(INPUT, COCO17, AugmentConfig()), seed=3
    )
    dataset = pickle.loads(pickle.dumps(dataset))  # worker processes get a pickled copy
    batch = collate_pose([dataset[0], dataset[1]])
    assert batch.images.shape == (2, 3, 64, 48) and batch.heatmaps.shape == (2, 17, 16, 12)
    assert batch.target_weight.shape == (2, 17) and batch.keypoints.shape == (2, 17, 3)
    assert batch.crop_to_image.shape == (2, 2, 3) and batch.ann_id.dtype == torch.long and len(batch) == 2
    torch.testing.assert_close(batch.target_weight, (batch.keypoints[..., 2] > 0).float())
    torch.testing.assert_close(dataset[0].image, batch.images[0])  # same (seed, index, draw) -> same sample
    assert not torch.equal(dataset[(0, 1)].image, batch.images[0])  # another draw of the same index
    moved = batch.to("cpu")
    assert moved.images.device.type == "cpu" and moved.box_score.dtype == torch.float32


def test_normalize_round_trip():
    crop = np.random.default_rng(0).integers(0, 256, (8, 6, 3), dtype=np.uint8)
    tensor = normalize_image(crop)
    assert tensor.shape == (3, 8, 6) and abs(float(tensor.mean())) < 2.5
    np.testing.assert_array_equal(denormalize(tensor), crop)
    np.testing.assert_array_equal(denormalize(tensor[None])[0], crop)
