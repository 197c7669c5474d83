"""Per-keypoint tables and worst cases from eval, and the teacher's pseudo-labels of a semi-supervised run
(apps/diagnostics.py)."""

from __future__ import annotations

import json

import cv2

from tests.tiny_runs import TINY
from trspose.cli import main
from trspose.config import load_config
from trspose.data.keypoints import COCO17
from trspose.engine import trainer


def test_eval_per_keypoint_and_worst_cases_from_the_cli(trained, tmp_path, capsys):
    assert (
        main(
            [
                "eval",
                str(trained),
                "--per-keypoint",
                str(tmp_path / "pk"),
                "--worst",
                "3",
                str(tmp_path / "w"),
            ]
        )
        == 0
    )
    table = json.loads((tmp_path / "pk" / "per_keypoint.json").read_text())
    assert table["matched_people"] == 4 and list(table["keypoints"]) == list(COCO17.names)
    assert set(table["keypoints"]["left_wrist"]) == {"oks", "pck@0.05", "pck@0.1", "error_px", "swap_rate"}
    assert "| left_wrist |" in capsys.readouterr().out
    worst = cv2.imread(str(tmp_path / "w" / "worst.png"))
    assert worst.shape[1] == 6 * 192 + 5 * 2  # 3 people, prediction beside ground truth: 6 panels in a row
    assert cv2.imread(str(tmp_path / "pk" / "per_keypoint.png")) is not None
    assert main(["eval", str(trained), "--worst", "zero", str(tmp_path / "w")]) == 2


def test_worst_cases_of_a_semi_supervised_run_also_show_the_teachers_pseudo_labels(stick_root, tmp_path):
    cfg = load_config(TINY, [f"data.root={stick_root}", f"output_dir={tmp_path}", "method.name=trs",
                             "train.steps=4", "method.burn_in_steps=2", "method.rampup_steps=2",
                             "train.unlabeled_batch_size=2", "method.confidence_threshold=0.25"])  # fmt: skip
    trainer.train(cfg)
    assert (
        main(
            ["eval", str(tmp_path / "tiny" / "checkpoints" / "last.pt"), "--worst", "2", str(tmp_path / "w")]
        )
        == 0
    )
    pseudo = cv2.imread(str(tmp_path / "w" / "worst_pseudo_labels.png"))
    assert pseudo.shape == (256, 6 * 192 + 5 * 2, 3)  # one row: two training people, teacher beside truth
    assert cv2.imread(str(tmp_path / "w" / "worst.png")) is not None
