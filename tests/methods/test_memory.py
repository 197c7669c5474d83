"""The per-person memory reviewer (methods/memory.py): what it keeps, where it draws it, when it teaches."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.tiny_runs import tiny_semi_config
from trspose.config import load_config
from trspose.data.codec import HeatmapCodec
from trspose.data.keypoints import COCO17
from trspose.engine import build, trainer
from trspose.engine.checkpoint import load_checkpoint
from trspose.engine.distributed import DistributedContext
from trspose.errors import ConfigError
from trspose.methods.memory import PeopleViews, PseudoLabelMemory, memory_target
from trspose.methods.pseudo_labels import PseudoTarget

CODEC = HeatmapCodec((64, 48), (16, 12), sigma=2.0)
FLIP = torch.as_tensor(COCO17.flip_index())
LEFT_WRIST, RIGHT_WRIST = 9, 10
# the person's wrists in image px; the crops below put them on whole heatmap pixels of the weak view
TRUTH = {LEFT_WRIST: (36.0, 48.0), RIGHT_WRIST: (52.0, 40.0)}


def crop_to_image(scale: float, tx: float, ty: float, mirror: bool) -> torch.Tensor:
    """image = [sx * x + tx, scale * y + ty] with sx = -scale for a mirrored crop."""
    return torch.tensor([[-scale if mirror else scale, 0.0, tx], [0.0, scale, ty]])


def in_crop(point: tuple[float, float], matrix: torch.Tensor) -> np.ndarray:
    a = matrix[:, :2].numpy()
    return np.linalg.solve(a, np.asarray(point) - matrix[:, 2].numpy())


def weak_heatmaps(weak: torch.Tensor) -> torch.Tensor:
    """The heatmaps a teacher that knows the truth predicts on the weak crop: in a mirrored crop channel c is drawn
    at the keypoint c stands for there, the person's flip_index[c]."""
    mirror = bool(torch.linalg.det(weak[:, :2]) < 0)
    keypoints = np.zeros((17, 3), np.float32)
    for channel in range(17):
        own = int(FLIP[channel]) if mirror else channel
        if own in TRUTH:
            keypoints[channel] = [*in_crop(TRUTH[own], weak), 2]
    return torch.from_numpy(CODEC.encode(keypoints)[0])[None]  # (1, 17, 16, 12)


def no_teacher(rows: int) -> PseudoTarget:
    zeros = torch.zeros(rows, 17)
    return PseudoTarget(torch.zeros(rows, 17, 16, 12), zeros, zeros, torch.zeros(rows, 17, 2))


@pytest.mark.parametrize("weak_mirror", [False, True])
@pytest.mark.parametrize("strong_mirror", [False, True])
def test_remembered_keypoints_are_drawn_where_each_strong_view_shows_them(weak_mirror, strong_mirror):
    weak = crop_to_image(1.0, 60.0 if weak_mirror else 12.0, 8.0, weak_mirror)
    strong = crop_to_image(1.25, 70.0 if strong_mirror else 10.0, 2.0, strong_mirror)
    people = PeopleViews(
        torch.tensor([7]), weak[None], torch.stack([strong, strong])
    )  # one person, two views
    memory = PseudoLabelMemory(17)
    target = memory_target(memory, weak_heatmaps(weak), no_teacher(2), people, CODEC, FLIP, threshold=0.1,
                           remember=True)  # fmt: skip
    assert len(memory) == 1 and target.heatmaps.shape == (2, 17, 16, 12)
    for channel in range(17):
        own = int(FLIP[channel]) if strong_mirror else channel  # what strong channel c stands for
        if own not in TRUTH:
            assert target.weight[:, channel].sum() == 0  # never seen: nothing to teach
            continue
        expected = CODEC.input_to_heatmap_points(torch.from_numpy(in_crop(TRUTH[own], strong)).float())
        for row in range(2):
            torch.testing.assert_close(target.peaks[row, channel], expected, atol=1e-4, rtol=0)
            assert target.weight[row, channel] == 1.0
    # the drawn Gaussian peaks where the codec would encode the keypoint
    encoded, _ = CODEC.gaussians(target.peaks)
    torch.testing.assert_close(target.heatmaps, encoded)


def test_the_memory_keeps_each_keypoints_most_confident_place_and_survives_a_checkpoint():
    memory = PseudoLabelMemory(2)
    ids = torch.tensor([3])
    memory.remember(ids, torch.tensor([[[1.0, 1.0], [2.0, 2.0]]]), torch.tensor([[0.5, 0.5]]))
    memory.remember(
        ids, torch.tensor([[[9.0, 9.0], [8.0, 8.0]]]), torch.tensor([[0.4, 0.7]])
    )  # only the 2nd wins
    torch.testing.assert_close(memory.recall(ids), torch.tensor([[[1.0, 1.0, 0.5], [8.0, 8.0, 0.7]]]))
    assert memory.recall(torch.tensor([4]))[0, :, 2].tolist() == [-1.0, -1.0]  # a person never seen
    restored = PseudoLabelMemory(2)
    restored.load_state_dict(memory.state_dict())
    torch.testing.assert_close(restored.recall(ids), memory.recall(ids))


def test_the_memory_teaches_only_where_it_is_surer_than_the_current_teacher():
    weak = crop_to_image(1.0, 12.0, 8.0, False)
    people = PeopleViews(torch.tensor([7]), weak[None], weak[None])
    memory = PseudoLabelMemory(17)
    heatmaps = weak_heatmaps(weak)  # peaks 1.0 at both wrists
    memory_target(memory, heatmaps, no_teacher(1), people, CODEC, FLIP, threshold=0.1, remember=True)
    teacher = no_teacher(1)
    teacher.confidence[0, LEFT_WRIST] = 1.0  # as sure as the memory: the teacher's own target is enough
    teacher.confidence[0, RIGHT_WRIST] = 0.3  # less sure: the memory's place is taught
    target = memory_target(memory, 0.3 * heatmaps, teacher, people, CODEC, FLIP, threshold=0.1, remember=True)
    assert target.weight[0, LEFT_WRIST] == 0.0 and target.weight[0, RIGHT_WRIST] == 1.0
    assert target.confidence[0, RIGHT_WRIST] == pytest.approx(
        1.0
    )  # the less sure prediction did not replace it


def test_a_trs_run_with_the_memory_reviewer_learns_from_it_measures_it_and_checkpoints_it(
    stick_root, tmp_path
):
    cfg = tiny_semi_config(stick_root, tmp_path, "trs", "method.reviewer.policy=memory", "train.steps=5",
                           "train.eval_every=5", "method.reviewer.weight_mode=share", "method.reviewer.weight=0.5",
                           "eval.pseudo_label_people=8", "data.labeled_fraction=0.5", "data.split_mode=random")  # fmt: skip
    trainer.train(cfg)
    records = [json.loads(line) for line in (tmp_path / "tiny" / "metrics.jsonl").read_text().splitlines()]
    trained = [r for r in records if r["kind"] == "train" and r["step"] > cfg.method.burn_in_steps]
    assert trained and all(r.get("loss/reviewer") is not None for r in trained)
    measured = [r for r in records if r["kind"] == "eval"][-1]
    assert measured.get("pseudo_quality/pck_reviewer") is not None
    memory = load_checkpoint(tmp_path / "tiny" / "checkpoints" / "last.pt")["method"]["memory"]
    assert len(memory["ann_ids"]) > 0 and memory["values"].shape[1:] == (17, 3)


def test_the_memory_reviewer_is_refused_where_it_cannot_work(stick_root, tmp_path):
    with pytest.raises(ConfigError, match="fusion must be 'separate' with policy=memory"):
        load_config(overrides=["method.reviewer.policy=memory", "method.reviewer.fusion=average"])
    cfg = tiny_semi_config(stick_root, tmp_path, "trs", "method.reviewer.policy=memory")
    with pytest.raises(ConfigError, match="policy=memory .* one process"):
        build.build_training_run(cfg, None, DistributedContext(world_size=2))


def test_the_memory_places_keypoints_in_float32_under_bf16_autocast():
    weak = crop_to_image(1.0, 12.0, 8.0, False)
    strong = crop_to_image(1.25, 10.3, 2.7, False)  # places that bf16 would round
    people = PeopleViews(torch.tensor([7]), weak[None], strong[None])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        target = memory_target(PseudoLabelMemory(17), weak_heatmaps(weak), no_teacher(1), people, CODEC, FLIP,
                               threshold=0.1, remember=True)  # fmt: skip
    assert target.heatmaps.dtype == target.peaks.dtype == torch.float32
    expected = CODEC.input_to_heatmap_points(torch.from_numpy(in_crop(TRUTH[LEFT_WRIST], strong)).float())
    torch.testing.assert_close(target.peaks[0, LEFT_WRIST], expected, atol=1e-4, rtol=0)


def test_the_teacher_gives_up_its_share_only_on_the_keypoints_the_memory_teaches(
    stick_root, tmp_path, monkeypatch
):
    from tests.methods.test_trs import batches
    from trspose.methods import trs

    cfg = tiny_semi_config(stick_root, tmp_path, "trs", "method.reviewer.policy=memory",
                           "method.reviewer.weight_mode=share", "method.reviewer.weight=0.5")  # fmt: skip
    method = build.build_method(cfg, build.build_model(cfg))
    labeled, unlabeled = batches(cfg, 2)
    step = cfg.method.burn_in_steps + cfg.method.rampup_steps  # the full consistency weight
    seen = []
    original = trs.multi_level_loss
    monkeypatch.setattr(trs, "multi_level_loss", lambda *a: seen.append(a[3].clone()) or original(*a))
    method.training_step(
        labeled, unlabeled, step
    )  # first sight: the memory holds only what the teacher says now
    supervised, teacher, memory = seen
    torch.testing.assert_close(memory, torch.zeros_like(memory))  # it teaches nothing...
    assert teacher.sum() > 0 and torch.all((teacher == 0) | (teacher == 1))  # ...so the teacher keeps it all
    seen.clear()
    monkeypatch.setattr(
        method.teacher,
        "forward",
        lambda images, f=method.teacher.forward: f(images).__class__(
            heatmaps=0.5 * f(images).heatmaps, levels={}
        ),
    )  # a less sure teacher: the memory now teaches
    method.training_step(labeled, unlabeled, step)
    _, teacher, memory = seen
    taught = memory > 0
    # where the memory teaches, the teacher keeps half (or nothing, where its own mask drops the keypoint)
    assert (
        taught.any()
        and torch.all((teacher[taught] == 0.5) | (teacher[taught] == 0))
        and (teacher == 0.5).any()
    )
    assert torch.all((teacher[~taught] == 1) | (teacher[~taught] == 0))  # elsewhere it keeps it all
