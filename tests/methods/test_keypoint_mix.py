"""Keypoint-Mix and joint cutout (methods/keypoint_mix.py)."""

import torch

from trspose.data.keypoints import COCO17
from trspose.methods.keypoint_mix import KeypointMixConfig, keypoint_mix


def test_keypoint_mix_pastes_where_it_says_and_leaves_targets_alone():
    images = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).reshape(2, 3, 32, 32)
    keypoints = torch.tensor([[[8.0, 8.0], [20.0, 24.0]], [[16.0, 10.0], [4.0, 28.0]]])
    valid = torch.ones(2, 2, dtype=torch.bool)
    targets = keypoints.clone()
    cfg = KeypointMixConfig(probability=1.0, count=2, patch_size=6, source="batch")
    mixed, record = keypoint_mix(images, keypoints, valid, cfg, torch.Generator().manual_seed(0))
    assert torch.equal(keypoints, targets)  # the function never touches locations / targets
    assert len(record.destination) == 4
    changed = torch.zeros(2, 32, 32, dtype=torch.bool)
    for (i, dx, dy), (j, sx, sy) in zip(record.destination, record.source):
        assert j != i  # 'batch' takes patches from other images
        torch.testing.assert_close(
            mixed[i, :, dy : dy + 6, dx : dx + 6], images[j, :, sy : sy + 6, sx : sx + 6]
        )
        changed[i, dy : dy + 6, dx : dx + 6] = True
    for i in range(len(images)):  # nothing else moved, in any image of the batch
        assert torch.equal(mixed[i][:, ~changed[i]], images[i][:, ~changed[i]]), i
    never = KeypointMixConfig(probability=0.0)
    assert torch.equal(keypoint_mix(images, keypoints, valid, never, torch.Generator())[0], images)


def test_keypoint_mix_swap_uses_the_left_right_partner():
    images = torch.rand(1, 3, 32, 32)
    keypoints = torch.zeros(1, 17, 2)
    keypoints[0, 5] = torch.tensor([6.0, 6.0])  # left shoulder
    keypoints[0, 6] = torch.tensor([24.0, 6.0])  # right shoulder
    valid = torch.zeros(1, 17, dtype=torch.bool)
    valid[0, 5:7] = True
    cfg = KeypointMixConfig(probability=1.0, count=2, patch_size=4, source="swap")
    mixed, record = keypoint_mix(
        images, keypoints, valid, cfg, torch.Generator().manual_seed(1), torch.as_tensor(COCO17.flip_index())
    )
    assert sorted(record.destination) == [(0, 4, 4), (0, 22, 4)]
    torch.testing.assert_close(mixed[0, :, 4:8, 4:8], images[0, :, 4:8, 22:26])
    torch.testing.assert_close(mixed[0, :, 4:8, 22:26], images[0, :, 4:8, 4:8])


def test_joint_cutout_erases_around_the_given_joints_only():
    from trspose.methods.keypoint_mix import JointCutoutConfig, joint_cutout

    images = torch.rand(2, 3, 32, 32) + 1.0  # never 0 before erasing
    keypoints = torch.tensor([[[8.0, 8.0], [20.0, 24.0]], [[16.0, 10.0], [4.0, 28.0]]])
    valid = torch.tensor([[True, False], [True, True]])
    cfg = JointCutoutConfig(probability=1.0, count=2, patch_size=6)
    out, erased = joint_cutout(images, keypoints, valid, cfg, torch.Generator().manual_seed(0))
    assert sorted(erased) == [(0, 5, 5), (1, 1, 25), (1, 13, 7)]  # centred on valid joints, clamped inside
    expected = images.clone()
    for i, x0, y0 in erased:
        expected[i, :, y0 : y0 + 6, x0 : x0 + 6] = 0.0
    assert torch.equal(out, expected)  # exactly those patches, nothing else
    off = JointCutoutConfig(probability=0.0)
    assert torch.equal(joint_cutout(images, keypoints, valid, off, torch.Generator())[0], images)
