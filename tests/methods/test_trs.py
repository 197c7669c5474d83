"""Teacher-Reviewer-Student: the consistency ramp-up and a training step with every term (methods/trs.py)."""

import math

import pytest
import torch

from tests.tiny_runs import tiny_semi_config
from trspose.data.datasets import collate_pose
from trspose.data.keypoints import COCO17
from trspose.data.sources import load_instances
from trspose.data.unlabeled import collate_unlabeled
from trspose.engine import build
from trspose.methods.reviewer import ReviewerConfig
from trspose.methods.teacher_student import sigmoid_rampup
from trspose.methods.trs import term_weights


def batches(cfg, n: int):
    """The first ``n`` labelled crops and unlabelled people of the tiny dataset, as one batch of each."""
    instances = load_instances(build.resolve_data(cfg), COCO17, "train")
    labeled = collate_pose([build.build_dataset(cfg, instances, train=True)[(i, i)] for i in range(n)])
    unlabeled_set = build.build_unlabeled(cfg, instances)
    return labeled, collate_unlabeled([unlabeled_set[(i, i)] for i in range(n)])


def train_steps(method, labeled, unlabeled, steps) -> dict:
    """Optimise ``method`` for ``steps`` on one batch, checking every loss is finite; returns the last metrics seen
    of every name."""
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-3)
    seen = {}
    for step in steps:
        out = method.training_step(labeled, unlabeled, step)
        assert torch.isfinite(out.loss)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        method.after_optimizer_step(step)
        seen.update(out.metrics)
    return seen


def test_sigmoid_rampup():
    assert sigmoid_rampup(5, start=10, length=100) == 0.0
    assert sigmoid_rampup(10, start=10, length=100) == pytest.approx(math.exp(-5))
    assert sigmoid_rampup(110, start=10, length=100) == 1.0
    assert sigmoid_rampup(500, start=10, length=0) == 1.0


def test_the_reviewer_weight_comes_on_top_of_the_teachers_or_out_of_it():
    added, share = ReviewerConfig(weight=0.25), ReviewerConfig(weight=0.25, weight_mode="share")
    assert term_weights(0.8, added, with_reviewer=True) == pytest.approx((0.8, 0.2))
    # the share sums to mean teacher's 0.8; with an empty store the teacher has it all
    assert term_weights(0.8, share, with_reviewer=True) == pytest.approx((0.6, 0.2))
    assert term_weights(0.8, share, with_reviewer=False) == (0.8, 0.0)


def test_trs_step_gives_finite_losses_with_every_term_present(stick_root, tmp_path):
    cfg = tiny_semi_config(
        stick_root, tmp_path, "trs", "method.reviewer.policy=periodic", "method.reviewer.every=1"
    )
    method = build.build_method(cfg, build.build_model(cfg))
    labeled, unlabeled = batches(cfg, 4)
    seen = train_steps(method, labeled, unlabeled, range(4))
    for key in ("loss/supervised", "loss/teacher", "loss/reviewer", "pseudo/kept_fraction", "pseudo/mean_confidence",
                "pseudo/teacher_reviewer_agreement"):  # fmt: skip
        assert key in seen and math.isfinite(float(seen[key])), key
    assert all(p.grad is None for p in method.teacher.parameters())
    assert all(p.grad is None for net in method.reviewer.networks for p in net.parameters())
    assert set(method.trainable) == {"student"}  # only the student is optimised / DDP-wrapped


@pytest.mark.parametrize("fusion", ["separate", "average", "confidence"])
def test_pseudo_targets_by_fusion(stick_root, tmp_path, fusion):
    """'separate': the target is the teacher's; 'average': the peaks of the mean of both networks' heatmaps;
    'confidence': per keypoint the more confident network's peak."""
    from trspose.methods.pseudo_labels import make_pseudo_target

    cfg = tiny_semi_config(stick_root, tmp_path, "trs", "method.reviewer.policy=periodic",
                           f"method.reviewer.fusion={fusion}")  # fmt: skip
    method = build.build_method(cfg, build.build_model(cfg))
    torch.manual_seed(3)
    with torch.no_grad():
        for p in method.teacher.parameters():
            p.add_(0.05 * torch.randn_like(p))  # a reviewer different from the teacher
    method.reviewer.snapshot(method.trainable["student"], step=0, score=0.0)
    no_teacher_yet = method.pseudo_targets(torch.zeros(1, 3, *cfg.data.input_size), torch.eye(2, 3)[None],
                                           torch.zeros(1, dtype=torch.bool))  # fmt: skip
    assert no_teacher_yet == {}
    method.step = cfg.method.burn_in_steps  # the teacher exists from the end of the burn-in
    weak = torch.randn(3, 3, *cfg.data.input_size)
    identity, flipped = torch.eye(2, 3).expand(3, 2, 3), torch.zeros(3, dtype=torch.bool)
    targets = method.pseudo_targets(weak, identity, flipped)
    teacher, reviewer, target = targets["teacher"], targets["reviewer"], targets["target"]
    assert not torch.equal(teacher.peaks, reviewer.peaks)
    if fusion == "separate":
        assert target is teacher
    elif fusion == "average":
        with torch.no_grad():
            mean = 0.5 * (method.teacher(weak).heatmaps + method.reviewer.predict(weak))
        expected = make_pseudo_target(
            mean, identity, flipped, method.flip_index, cfg.method.confidence_threshold
        )
        torch.testing.assert_close(target.peaks, expected.peaks)
        torch.testing.assert_close(target.heatmaps, expected.heatmaps)
    else:
        reviewer_wins = (reviewer.confidence > teacher.confidence)[..., None]
        torch.testing.assert_close(target.peaks, torch.where(reviewer_wins, reviewer.peaks, teacher.peaks))


def test_a_shared_reviewer_weight_is_taken_out_of_the_teacher_term(stick_root, tmp_path):
    """The same step with the same networks and draws: weight_mode 'share' differs from 'added' only by the
    reviewer's share of the teacher term, ramp * weight * L_teacher."""
    losses = {}
    for mode in ("added", "share"):
        cfg = tiny_semi_config(stick_root, tmp_path, "trs", "method.reviewer.policy=periodic", "method.reviewer.every=1",
                               "method.reviewer.weight=0.25", f"method.reviewer.weight_mode={mode}")  # fmt: skip
        torch.manual_seed(0)
        method = build.build_method(cfg, build.build_model(cfg))
        labeled, unlabeled = batches(cfg, 2)
        # ramped up: w(t) = consistency_weight
        method.step = cfg.method.burn_in_steps + cfg.method.rampup_steps
        method.reviewer.snapshot(method.teacher, step=0, score=0.0)
        with torch.no_grad():
            out = method.training_step(labeled, unlabeled, method.step)
        losses[mode] = out.loss, out.metrics
    (added, metrics), (share, share_metrics) = losses["added"], losses["share"]
    assert metrics["weight/consistency"] == 1.0 and metrics["loss/reviewer"] > 0
    torch.testing.assert_close(share_metrics["loss/teacher"], metrics["loss/teacher"])
    torch.testing.assert_close(added - share, 0.25 * metrics["loss/teacher"])


def test_mean_teacher_learns_from_every_strong_view_of_each_person(stick_root, tmp_path):
    cfg = tiny_semi_config(stick_root, tmp_path, "mean_teacher", "data.strong_views=3")
    method = build.build_method(cfg, build.build_model(cfg))
    labeled, unlabeled = batches(cfg, 2)
    assert unlabeled.weak.shape[0] == 2 and unlabeled.strong.shape[0] == 6
    seen = []
    hook = method.trainable["student"].register_forward_hook(
        lambda module, args, out: seen.append(len(args[0]))
    )
    out = method.training_step(labeled, unlabeled, cfg.method.burn_in_steps)
    hook.remove()
    assert seen == [2 + 6] and torch.isfinite(out.loss)  # 2 labelled crops and 3 strong views of 2 people
    targets = method.pseudo_targets(unlabeled.weak, unlabeled.weak_to_strong, unlabeled.flipped)
    assert targets["teacher"].heatmaps.shape[0] == 6
    # view v of every person is the one-view target made with that view's geometry
    for view in range(3):
        one_view = method.pseudo_targets(
            unlabeled.weak, unlabeled.weak_to_strong[view::3], unlabeled.flipped[view::3]
        )["teacher"]
        torch.testing.assert_close(targets["teacher"].heatmaps[view::3], one_view.heatmaps)
        torch.testing.assert_close(targets["teacher"].weight[view::3], one_view.weight)


@pytest.mark.parametrize("method_name, extra", [
    ("dual", []),
    ("trs", ["method.reviewer.policy=periodic", "method.reviewer.every=1", "method.reviewer.fusion=average"]),
    ("trs", ["method.reviewer.policy=periodic", "method.reviewer.every=1"]),
])  # fmt: skip
def test_several_strong_views_train_every_method(stick_root, tmp_path, method_name, extra):
    cfg = tiny_semi_config(stick_root, tmp_path, method_name, "data.strong_views=2", *extra)
    method = build.build_method(cfg, build.build_model(cfg))
    labeled, unlabeled = batches(cfg, 3)
    first = cfg.method.burn_in_steps
    train_steps(method, labeled, unlabeled, range(first, first + 2))  # the reviewer fills, then teaches
    targets = method.pseudo_targets(unlabeled.weak, unlabeled.weak_to_strong, unlabeled.flipped)
    assert {name: target.heatmaps.shape[0] for name, target in targets.items()} == dict.fromkeys(targets, 6)
