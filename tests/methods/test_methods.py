"""Semi-supervised methods: EMA maths, frozen teacher/reviewer, Keypoint-Mix, reviewer policies, TRS steps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tests.stick_figures import write_stick_figure_dataset
from trspose.config import load_config
from trspose.data.codec import argmax_heatmaps
from trspose.data.datasets import collate_pose
from trspose.data.keypoints import COCO17
from trspose.data.sources import load_instances
from trspose.data.unlabeled import collate_unlabeled
from trspose.engine import build, jobs
from trspose.engine.checkpoint import load_checkpoint
from trspose.methods.ema import ema_update, frozen_copy
from trspose.methods.keypoint_mix import KeypointMixConfig, keypoint_mix
from trspose.methods.pseudo_labels import make_pseudo_target
from trspose.methods.reviewer import ReviewerConfig, ReviewerStore

TINY = Path(__file__).parents[2] / "configs" / "tiny.yaml"


@pytest.fixture(scope="module")
def stick_root(tmp_path_factory) -> Path:
    return write_stick_figure_dataset(tmp_path_factory.mktemp("sticks"))


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))


@pytest.mark.parametrize("momentum", [0.0, 1.0, 0.9])
def test_ema_update_maths(momentum):
    target, source = small_net(), small_net()
    with torch.no_grad():
        for p in source.parameters():
            p.add_(1.0)
        source[1].running_mean.fill_(2.0)
    before = [p.clone() for p in target.parameters()]
    ema_update(target, source, momentum)
    for t, b, s in zip(target.parameters(), before, source.parameters()):
        torch.testing.assert_close(t, momentum * b + (1 - momentum) * s)
    expected_mean = momentum * 0.0 + (1 - momentum) * 2.0
    torch.testing.assert_close(target[1].running_mean, torch.full((4,), expected_mean))


def test_frozen_copy_never_gets_gradients_and_stays_in_eval_mode():
    teacher = frozen_copy(small_net())
    assert not teacher.training
    assert all(not p.requires_grad for p in teacher.parameters())
    out = teacher(torch.randn(2, 3, 8, 8)).sum()
    assert not out.requires_grad


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
    assert torch.equal(mixed[:, :, ~changed[0]][0], images[:, :, ~changed[0]][0])  # nothing else moved
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


def test_reviewer_best_policy_snapshots_when_and_only_when_the_score_improves():
    teacher = small_net()
    store = ReviewerStore(teacher, ReviewerConfig(policy="best", size=2))
    assert not store.after_evaluation(10, 50.0, teacher, teacher_ready=False)  # teacher not ready yet
    assert store.after_evaluation(20, 50.0, teacher, teacher_ready=True)
    assert not store.after_evaluation(30, 49.0, teacher, teacher_ready=True)
    assert not store.after_evaluation(40, 50.0, teacher, teacher_ready=True)  # ties are not new bests
    assert store.after_evaluation(50, 55.0, teacher, teacher_ready=True)
    assert store.after_evaluation(60, 60.0, teacher, teacher_ready=True)
    assert store.steps == [50, 60] and store.scores == [55.0, 60.0]  # size 2 keeps the best two
    assert not store.after_step(99, teacher, teacher_ready=True)  # step-driven policies do nothing here
    assert all(not p.requires_grad for net in store.networks for p in net.parameters())


def test_reviewer_periodic_and_slow_ema_policies():
    teacher = small_net()
    periodic = ReviewerStore(teacher, ReviewerConfig(policy="periodic", every=5, size=1))
    taken = [s for s in range(20) if periodic.after_step(s, teacher, teacher_ready=True)]
    assert taken == [4, 9, 14, 19] and periodic.steps == [20]
    assert not periodic.after_evaluation(20, 99.0, teacher, teacher_ready=True)
    slow = ReviewerStore(teacher, ReviewerConfig(policy="slow_ema", momentum=0.5))
    slow.after_step(0, teacher, teacher_ready=True)
    with torch.no_grad():
        for p in teacher.parameters():
            p.add_(2.0)
    slow.after_step(1, teacher, teacher_ready=True)
    torch.testing.assert_close(next(slow.networks[0].parameters()), next(teacher.parameters()) - 1.0)


def test_pseudo_target_warping_keeps_peaks_and_masks_low_confidence():
    heatmaps = torch.zeros(1, 17, 16, 16)
    heatmaps[0, 5, 4, 3] = 0.9  # left shoulder at (x=3, y=4), confident
    heatmaps[0, 6, 8, 8] = 0.05  # right shoulder, not confident
    shift = torch.tensor([[[1.0, 0.0, 2.0], [0.0, 1.0, 1.0]]])  # +2 px in x, +1 px in y
    target = make_pseudo_target(heatmaps, shift, torch.tensor([False]), None, threshold=0.2)
    peaks, _ = argmax_heatmaps(target.heatmaps)
    assert peaks[0, 5].tolist() == [5.0, 5.0]
    assert target.weight[0, 5] == 1 and target.weight[0, 6] == 0


def tiny_semi_config(root, out, method, *extra):
    return load_config(TINY, [
        f"data.root={root}", f"output_dir={out}", f"method.name={method}", "method.burn_in_steps=2",
        "method.rampup_steps=2", "train.unlabeled_batch_size=4", "method.confidence_threshold=0.0",
        "method.mix.probability=1.0", "model.mfl_levels=[stage2,stage3]",
        *(["method.joint_cutout.probability=1.0"] if method in ("trs", "mean_teacher") else []), *extra,
    ])  # fmt: skip


def test_trs_step_gives_finite_losses_with_every_term_present(stick_root, tmp_path):
    cfg = tiny_semi_config(
        stick_root, tmp_path, "trs", "method.reviewer.policy=periodic", "method.reviewer.every=1"
    )
    method = build.build_method(cfg, build.build_model(cfg))
    instances = load_instances(build.resolve_data(cfg), COCO17, "train")
    labeled = collate_pose([build.build_dataset(cfg, instances, train=True)[(i, i)] for i in range(4)])
    unlabeled_set = build.build_unlabeled(cfg, instances)
    unlabeled = collate_unlabeled([unlabeled_set[(i, i)] for i in range(4)])
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-3)
    seen = {}
    for step in range(4):
        out = method.training_step(labeled, unlabeled, step)
        assert torch.isfinite(out.loss)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        method.after_optimizer_step(step)
        seen.update(out.metrics)
    for key in ("loss/supervised", "loss/teacher", "loss/reviewer", "pseudo/kept_fraction", "pseudo/mean_confidence",
                "pseudo/teacher_reviewer_agreement"):  # fmt: skip
        assert key in seen and seen[key] == seen[key], key
    assert all(p.grad is None for p in method.teacher.parameters())
    assert all(p.grad is None for net in method.reviewer.networks for p in net.parameters())
    assert set(method.trainable) == {"student"}  # only the student is optimised / DDP-wrapped


def test_mean_teacher_and_dual_switch_parts_off(stick_root, tmp_path):
    mean_teacher = build.build_method(
        tiny_semi_config(stick_root, tmp_path, "mean_teacher"), build.build_model(load_config(TINY))
    )
    assert mean_teacher.cfg.reviewer.policy == "none" and not mean_teacher.cfg.keypoint_mix
    dual = build.build_method(
        tiny_semi_config(stick_root, tmp_path, "dual"), build.build_model(load_config(TINY))
    )
    assert set(dual.trainable) == {"student", "partner"}
    first, second = (next(dual.trainable[n].parameters()) for n in ("student", "partner"))
    assert not torch.equal(first, second)  # two different initialisations


@pytest.mark.parametrize("method", ["trs", "dual"])
def test_resume_mid_semi_supervised_training_is_exact(stick_root, tmp_path, monkeypatch, method):
    extra = ["method.reviewer.policy=best", "train.eval_every=2", "train.checkpoint_every=2", "train.steps=6"]
    jobs.train(tiny_semi_config(stick_root, tmp_path, method, "name=straight", *extra))
    from trspose.methods.base import Method

    def crash(self, step):
        raise KeyboardInterrupt

    cls = type(
        build.build_method(
            tiny_semi_config(stick_root, tmp_path, method), build.build_model(load_config(TINY))
        )
    )
    original = cls.after_optimizer_step
    monkeypatch.setattr(
        cls,
        "after_optimizer_step",
        lambda self, step: crash(self, step) if step == 4 else original(self, step),
    )
    with pytest.raises(KeyboardInterrupt):
        jobs.train(tiny_semi_config(stick_root, tmp_path, method, "name=crashed", *extra))
    monkeypatch.setattr(cls, "after_optimizer_step", original)
    assert issubclass(cls, Method)
    jobs.train(tiny_semi_config(stick_root, tmp_path, method, "name=crashed", *extra), resume=True)
    a = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "crashed" / "checkpoints" / "last.pt")
    assert_same_tree(a["method"], b["method"])
    assert a["scheduler"] == b["scheduler"]
    if method == "trs":
        assert a["method"]["step"] == 6 and len(a["method"]["reviewer"]["networks"]) >= 1
    lines = (tmp_path / "crashed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines if json.loads(x)["kind"] == "train"] == list(range(1, 7))


def assert_same_tree(a, b, path="method"):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            assert_same_tree(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tree(x, y, f"{path}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    else:
        assert a == b, path


def test_unlabeled_pool_from_a_folder_of_images_with_boxes(stick_root, tmp_path):
    """data.unlabeled_images + unlabeled_boxes: extra people (e.g. COCO unlabeled2017 with detector boxes)."""
    folder = tmp_path / "wild"
    folder.mkdir()
    for path in sorted((stick_root / "images" / "val").glob("*.jpg"))[:3]:
        (folder / path.name).write_bytes(path.read_bytes())
    names = sorted(p.name for p in folder.glob("*.jpg"))
    boxes = {names[0]: [[5, 5, 40, 60, 0.9], [1, 1, 20, 30, 0.1]], names[1]: [[10, 8, 30, 50]]}
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    common = [f"data.unlabeled_images={folder}", f"data.unlabeled_boxes={tmp_path / 'boxes.json'}",
              "data.unlabeled_min_box_score=0.5"]  # fmt: skip
    cfg = tiny_semi_config(stick_root, tmp_path, "trs", *common, "data.unlabeled_include_train=false")
    files = build.resolve_data(cfg)
    train = load_instances(files, COCO17, "train")
    pool = build.unlabeled_people(cfg, files, train)
    assert [p.image_path.name for p in pool] == [
        names[0],
        names[1],
    ]  # low-score box and box-less image dropped
    assert [p.box.tolist() for p in pool] == [[5, 5, 40, 60], [10, 8, 30, 50]]
    assert min(p.ann_id for p in pool) > max(
        t.ann_id for t in train
    )  # ids never collide with the train split
    both = build.unlabeled_people(tiny_semi_config(stick_root, tmp_path, "trs", *common), files, train)
    assert len(both) == len(train) + 2
    views = build.build_unlabeled(cfg, pool)
    assert [views[(i, i)].ann_id for i in range(2)] == [p.ann_id for p in pool]  # the folder's people are fed
    # and a semi-supervised run trains on that pool
    run_cfg = tiny_semi_config(stick_root, tmp_path, "trs", *common, "name=wild_run", "train.steps=4")
    metrics = jobs.train(run_cfg)
    assert metrics["val/AP"] == metrics["val/AP"]
    assert json.loads((tmp_path / "wild_run" / "unlabeled_pool.json").read_text())[
        "num_instances"
    ] == 2 + len(train)
    # the stream is a function of the pool: resuming after the boxes changed would silently train on another one
    (tmp_path / "boxes.json").write_text(json.dumps({names[0]: [[5, 5, 40, 60, 0.9]]}))
    from trspose.errors import DataError

    with pytest.raises(DataError, match="unlabelled pool changed since this run started"):
        jobs.train(run_cfg, resume=True)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["data.unlabeled_boxes=boxes.json"], "data.unlabeled_boxes needs data.unlabeled_images"),
        (
            ["data.unlabeled_include_train=false"],
            "data.unlabeled_include_train=false needs data.unlabeled_images",
        ),
        (["method.name=dual"], "method.joint_cutout needs method.name trs or mean_teacher"),
    ],
)
def test_settings_that_would_do_nothing_are_config_errors(stick_root, tmp_path, overrides, message):
    from trspose.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        tiny_semi_config(stick_root, tmp_path, "trs", *overrides)


@pytest.mark.parametrize(
    "boxes",
    [{"000001.jpg": [[1, 2, 3]]}, {"000001.jpg": [[1, 2, 3, "wide"]]}, [{"file_name": "000001.jpg", "bbox": [1, 2, 3]}],
     [{"file_name": "000001.jpg", "bbox": [1, 2, 3, 4], "score": None}]],
)  # fmt: skip
def test_a_malformed_boxes_file_is_a_data_error_naming_it(stick_root, tmp_path, boxes):
    from trspose.data.coco import load_image_folder_with_boxes
    from trspose.errors import DataError

    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    with pytest.raises(DataError, match=r"boxes\.json: .*\[x, y, w, h"):
        load_image_folder_with_boxes(stick_root / "images" / "train", tmp_path / "boxes.json")


def test_teacher_peaks_map_back_to_the_joint_in_input_pixels():
    """TRS places Keypoint-Mix patches and joint cutouts at peaks * stride: the codec's x / stride, inverted."""
    from trspose.data.codec import HeatmapCodec

    codec = HeatmapCodec(input_size=(64, 48), heatmap_size=(16, 12), sigma=2.0)
    keypoints = np.zeros((17, 3), np.float32)
    keypoints[:, 2] = 2
    keypoints[:, 0], keypoints[:, 1] = 4.0 * (np.arange(17) % 12), 4.0 * (np.arange(17) % 16)
    heatmaps = torch.from_numpy(codec.encode(keypoints)[0])[None]  # (1, 17, 16, 12)
    identity = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    target = make_pseudo_target(heatmaps, identity, torch.tensor([False]), None, threshold=0.5)
    torch.testing.assert_close(target.peaks[0] * 4.0, torch.from_numpy(keypoints[:, :2]))


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
