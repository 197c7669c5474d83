"""Dual networks (PoseDual): each network learns from the other's pseudo-targets (methods/dual.py)."""

import pytest

from tests.methods.test_trs import batches
from tests.tiny_runs import tiny_semi_config
from trspose.engine import build


def test_each_network_learns_from_the_others_targets_after_the_burn_in(stick_root, tmp_path):
    cfg = tiny_semi_config(stick_root, tmp_path, "dual")
    method = build.build_method(cfg, build.build_model(cfg))
    labeled, unlabeled = batches(cfg, 2)
    made_by, original = [], method._target

    def target(name, *args):
        made_by.append((name, method.trainable[name].training))
        return original(name, *args)

    method._target = target
    method.train()
    out = method.training_step(labeled, None, 0)  # burn-in: supervised only, no pseudo-targets
    assert made_by == [] and set(out.metrics) == {"loss/supervised_student", "loss/supervised_partner"}
    out = method.training_step(labeled, unlabeled, cfg.method.burn_in_steps)
    # the student's target comes from its partner and the partner's from the student, both asked in train mode
    # (the target is then made in eval mode) and left in train mode
    assert made_by == [("partner", True), ("student", True)]
    assert all(network.training for network in method.trainable.values())
    for key in ("loss/consistency_student", "loss/consistency_partner", "pseudo/kept_fraction_student",
                "pseudo/kept_fraction_partner", "pseudo/kept_fraction"):  # fmt: skip
        assert key in out.metrics, key
    kept = [float(out.metrics[f"pseudo/kept_fraction_{n}"]) for n in ("student", "partner")]
    assert float(out.metrics["pseudo/kept_fraction"]) == pytest.approx(sum(kept) / 2)
    out.loss.backward()
    for name, network in method.trainable.items():  # one loss trains both networks
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in network.parameters()), name
    assert method.inference_model() is method.trainable["student"]
