"""Inference and the evaluator: the flip test, the metrics logged at each evaluation, and the measurements of
pseudo-labels on unlabelled people with hidden ground truth (evaluation/inference.py, evaluation/pseudo_label_quality.py)."""

import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from tests.tiny_runs import TINY
from trspose.config import load_config
from trspose.data.datasets import collate_pose
from trspose.data.sources import load_instances
from trspose.engine import build, trainer
from trspose.engine.checkpoint import load_checkpoint
from trspose.evaluation.pseudo_label_quality import PseudoLabelProbe
from trspose.methods.pseudo_labels import PseudoTarget
from trspose.methods.trs import TeacherReviewerStudent


def test_flip_test_is_unbiased():
    """A model that is exactly mirror-symmetric must give the same peak with and without the flip test."""
    from trspose.data.codec import HeatmapCodec
    from trspose.evaluation.inference import predict_heatmaps

    codec = HeatmapCodec((64, 64), (16, 16), sigma=2.0)

    class Oracle(torch.nn.Module):
        """Puts a Gaussian on the brightest input pixel (a perfectly equivariant 'model')."""

        def forward(self, images):
            from types import SimpleNamespace

            b, _, h, w = images.shape
            flat = images[:, 0].reshape(b, -1).argmax(dim=1)
            points = torch.stack([flat % w, flat // w], dim=1).float()  # input px
            maps = [torch.from_numpy(codec.encode(np.array([[*p.tolist(), 2.0]] * 17))[0]) for p in points]
            return SimpleNamespace(heatmaps=torch.stack(maps))

    images = torch.zeros(1, 3, 64, 64)
    images[0, :, 30, 21] = 1.0
    flip_index = np.arange(17)
    plain, _ = codec.decode(predict_heatmaps(Oracle(), images, None))
    flipped, _ = codec.decode(predict_heatmaps(Oracle(), images, flip_index))
    assert plain[0, 0].tolist() == pytest.approx([21.0, 30.0], abs=0.15)
    assert flipped[0, 0].tolist() == pytest.approx(plain[0, 0].tolist(), abs=0.15)


def test_training_logs_per_keypoint_pck_at_each_evaluation(trained):
    records = [json.loads(line) for line in (trained.parents[1] / "metrics.jsonl").read_text().splitlines()]
    evaluations = [r for r in records if "val/AP" in r]
    assert evaluations and all(
        "val_pck/left_wrist" in r and 0 <= r["val_pck/left_wrist"] <= 100 for r in evaluations
    )


WRONG = (0, 1, 2, 3, 4, 5, 6, 7)  # keypoints the stand-in reviewer gets wrong
KEPT = (0, 1, 2, 9, 10)  # keypoints the stand-in mask keeps


class StandIn:
    """A method whose teacher predicts the ground truth, whose reviewer is 30 crop px off on WRONG, and whose
    target is the reviewer's (a fused target) with only KEPT trusted."""

    def __init__(self, dataset, batch_size: int):
        self.batches = iter(DataLoader(dataset, batch_size=batch_size, collate_fn=collate_pose))

    def pseudo_targets(self, weak, weak_to_strong, flipped, people=None):
        batch = next(self.batches)  # the probe reads its people in order: the same batch
        assert torch.equal(weak, batch.images) and not flipped.any()
        truth = batch.keypoints[..., :2] / 4.0  # (B, K, 2) crop px -> heatmap px (stride 4)
        off = truth.clone()
        off[:, list(WRONG)] += 30.0 / 4.0
        weight = torch.zeros(truth.shape[:2])
        weight[:, list(KEPT)] = 1.0

        def target(peaks, weight):
            b, k = peaks.shape[:2]
            heatmaps = torch.zeros(b, k, weak.shape[-2] // 4, weak.shape[-1] // 4)
            return PseudoTarget(heatmaps, weight, torch.ones(b, k), peaks)

        reviewer = target(off, weight)
        return {"teacher": target(truth, torch.ones_like(weight)), "reviewer": reviewer, "target": reviewer}


def test_pseudo_label_quality_counts_what_is_right_and_what_the_mask_keeps(stick_root):
    cfg = load_config(
        TINY, [f"data.root={stick_root}", "eval.pseudo_label_people=5", "train.unlabeled_batch_size=2"]
    )
    files = build.resolve_data(cfg)
    pool = build.unlabeled_people(cfg, files, load_instances(files, build.keypoint_spec(cfg), "train"))
    labeled = pool[:3]
    probe = build.pseudo_label_probe(cfg, pool, labeled)
    people = probe.dataset.instances
    assert len(people) == 5 and not {p.ann_id for p in people} & {p.ann_id for p in labeled}
    metrics = probe.measure(StandIn(probe.dataset, batch_size=2), torch.device("cpu"))

    seen = np.stack([p.keypoints[:, 2] > 0 for p in people])  # (N, K) labelled keypoints
    right = np.ones_like(seen)
    right[:, list(WRONG)] = False  # 30 px is more than 0.1 x the box of every stick figure
    assert max(max(p.box[2], p.box[3]) for p in people) < 300
    kept = np.zeros_like(seen)
    kept[:, list(KEPT)] = True
    expected = {
        "pseudo_quality/pck_teacher": 100.0,
        "pseudo_quality/pck_reviewer": 100.0 * right[seen].mean(),
        "pseudo_quality/pck_target": 100.0 * right[seen].mean(),
        "pseudo_quality/kept_fraction": 100.0 * kept[seen].mean(),
        "pseudo_quality/mask_precision": 100.0 * right[kept & seen].mean(),  # 3 of the 5 kept are right
        "pseudo_quality/reviewer_right_teacher_wrong": 0.0,
        "pseudo_quality/teacher_right_reviewer_wrong": 100.0 * (~right)[seen].mean(),
    }
    assert metrics == pytest.approx(expected)
    assert (
        0 < expected["pseudo_quality/mask_precision"] < 100
        and 0 < expected["pseudo_quality/pck_reviewer"] < 100
    )


def test_probe_is_off_without_people_with_ground_truth_and_for_supervised_methods(stick_root):
    cfg = load_config(TINY, [f"data.root={stick_root}", "eval.pseudo_label_people=0"])
    files = build.resolve_data(cfg)
    pool = build.unlabeled_people(cfg, files, load_instances(files, build.keypoint_spec(cfg), "train"))
    assert build.pseudo_label_probe(cfg, pool, []) is None
    on = load_config(TINY, [f"data.root={stick_root}"])
    assert build.pseudo_label_probe(on, pool, labeled=pool) is None  # every person is labelled
    probe = build.pseudo_label_probe(on, pool, [])
    supervised = build.build_method(on, build.build_model(on))
    assert probe.measure(supervised, torch.device("cpu")) == {}


def test_a_trs_run_logs_the_pseudo_label_quality_at_each_evaluation(stick_root, tmp_path):
    cfg = load_config(TINY, [
        f"data.root={stick_root}", f"output_dir={tmp_path}", "name=probe", "method.name=trs", "train.steps=4",
        "train.eval_every=2", "method.burn_in_steps=2", "method.rampup_steps=2", "train.unlabeled_batch_size=2",
        "method.reviewer.policy=periodic", "method.reviewer.every=1", "data.num_labeled=6",
    ])  # fmt: skip
    trainer.train(cfg)
    records = [json.loads(line) for line in (tmp_path / "probe" / "metrics.jsonl").read_text().splitlines()]
    evaluations = [r for r in records if r["kind"] == "eval"]
    assert [r["step"] for r in evaluations] == [2, 4]
    last = evaluations[-1]
    for name in (
        "pck_teacher",
        "pck_reviewer",
        "pck_target",
        "kept_fraction",
        "reviewer_right_teacher_wrong",
    ):
        assert 0.0 <= last[f"pseudo_quality/{name}"] <= 100.0, name
    assert last["pseudo_quality/pck_target"] == last["pseudo_quality/pck_teacher"]  # fusion 'separate'
    # the reviewer measured at step 4 is the one steps 3 learned from (taken at its start), not a copy of the
    # teacher taken after step 4
    assert load_checkpoint(tmp_path / "probe" / "checkpoints" / "last.pt")["method"]["reviewer"]["steps"] == [
        3
    ]


def test_the_pseudo_labels_are_measured_before_a_new_best_enters_the_reviewer(
    stick_root, tmp_path, monkeypatch
):
    calls = []
    measure, after_evaluation = PseudoLabelProbe.measure, TeacherReviewerStudent.after_evaluation
    monkeypatch.setattr(
        PseudoLabelProbe, "measure", lambda self, *a: calls.append("measure") or measure(self, *a)
    )
    monkeypatch.setattr(
        TeacherReviewerStudent,
        "after_evaluation",
        lambda self, *a: calls.append("review") or after_evaluation(self, *a),
    )
    cfg = load_config(TINY, [
        f"data.root={stick_root}", f"output_dir={tmp_path}", "name=order", "method.name=trs", "train.steps=2",
        "train.eval_every=1", "method.burn_in_steps=1", "method.rampup_steps=1", "train.unlabeled_batch_size=2",
        "method.reviewer.policy=best", "data.num_labeled=6",
    ])  # fmt: skip
    trainer.train(cfg)
    assert calls == ["measure", "review", "measure", "review"]
    records = [json.loads(line) for line in (tmp_path / "order" / "metrics.jsonl").read_text().splitlines()]
    first, second = [r for r in records if r["kind"] == "eval"]
    assert "pseudo_quality/pck_reviewer" not in first  # the store was empty when step 1 was measured
    assert "pseudo_quality/pck_reviewer" in second
