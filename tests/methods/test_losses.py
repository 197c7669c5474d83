"""The heatmap losses every method uses (methods/losses.py) and supervised training's step (methods/supervised.py)."""

import pytest
import torch

from tests.methods.test_trs import batches
from tests.tiny_runs import TINY
from trspose.config import load_config
from trspose.engine import build
from trspose.methods.losses import heatmap_mse, multi_level_loss


def test_heatmap_mse_is_half_the_pixel_mean_weighted_per_keypoint():
    prediction, target = torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4)
    prediction[0, 1] = 2.0  # squared error 4 on every pixel of one map
    weight = torch.ones(2, 3)
    assert heatmap_mse(prediction, target, weight).item() == pytest.approx(0.5 * 4.0 / 6)
    weight[0, 1] = 0.0  # a keypoint that must not count
    assert heatmap_mse(prediction, target, weight).item() == 0.0


def test_every_level_head_learns_the_same_target_with_its_weight():
    target = torch.zeros(1, 2, 4, 4)
    main, stage2, stage3 = torch.ones(1, 2, 4, 4), torch.full((1, 2, 4, 4), 2.0), torch.zeros(1, 2, 4, 4)
    weight = torch.ones(1, 2)
    total, parts = multi_level_loss(
        main, {"stage2": stage2, "stage3": stage3}, target, weight, {"stage2": 0.5}
    )
    assert parts["main"].item() == pytest.approx(0.5) and parts["stage2"].item() == pytest.approx(2.0)
    assert parts["stage3"].item() == 0.0
    # stage2 at its weight 0.5, stage3 at the default 1
    assert total.item() == pytest.approx(0.5 + 0.5 * 2.0 + 0.0)


def test_supervised_step_reads_only_the_labeled_batch_and_logs_each_level(stick_root, tmp_path):
    cfg = load_config(
        TINY, [f"data.root={stick_root}", f"output_dir={tmp_path}", "model.mfl_levels=[stage2]"]
    )
    method = build.build_method(cfg, build.build_model(cfg))
    labeled, unlabeled = batches(cfg, 2)
    out = method.training_step(labeled, None, 0)
    assert set(out.metrics) == {"loss/supervised", "loss/level_stage2"} and not method.uses_unlabeled
    # an unlabelled batch, if one were passed, changes nothing
    torch.testing.assert_close(method.training_step(labeled, unlabeled, 0).loss, out.loss)
    out.loss.backward()
    assert method.inference_model() is method.trainable["student"]
