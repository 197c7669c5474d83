"""Reviewer policies: best, periodic and slow EMA snapshots (methods/reviewer.py)."""

import torch

from tests.methods.networks import small_net
from trspose.methods.reviewer import ReviewerConfig, ReviewerStore


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
    assert not store.before_step(100, teacher, teacher_ready=True)
    assert all(not p.requires_grad for net in store.networks for p in net.parameters())


def test_reviewer_periodic_and_slow_ema_policies():
    teacher = small_net()
    periodic = ReviewerStore(teacher, ReviewerConfig(policy="periodic", every=5, size=1))
    taken = [s for s in range(21) if periodic.before_step(s, teacher, teacher_ready=True)]
    assert taken == [5, 10, 15, 20] and periodic.steps == [20]  # at the start of steps 5, 10, ...: not step 0
    assert not periodic.after_step(20, teacher, teacher_ready=True)
    assert not periodic.after_evaluation(20, 99.0, teacher, teacher_ready=True)
    assert not periodic.before_step(25, teacher, teacher_ready=False)  # no teacher yet
    slow = ReviewerStore(teacher, ReviewerConfig(policy="slow_ema", momentum=0.5))
    assert not slow.before_step(5, teacher, teacher_ready=True)
    slow.after_step(0, teacher, teacher_ready=True)
    with torch.no_grad():
        for p in teacher.parameters():
            p.add_(2.0)
    slow.after_step(1, teacher, teacher_ready=True)
    torch.testing.assert_close(next(slow.networks[0].parameters()), next(teacher.parameters()) - 1.0)
