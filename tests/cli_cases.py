"""What the CLI tests of evaluation and bad input share: a stick-figure dataset with six validation people, an
untrained checkpoint, and a stand-in model that predicts the ground truth (so AP is known without training)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from tests.stick_figures import write_stick_figure_dataset
from tests.tiny_runs import TINY
from trspose.cli import main
from trspose.config import config_to_dict, load_config
from trspose.data.keypoints import COCO17
from trspose.engine import build
from trspose.engine.checkpoint import save_checkpoint
from trspose.evaluation.coco_eval import evaluate_coco_keypoints
from trspose.evaluation.inference import Predictions, keypoint_results

K = 17


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return write_stick_figure_dataset(tmp_path_factory.mktemp("sticks"), num_train=4, num_val=6)


@pytest.fixture(scope="module")
def checkpoint(root, tmp_path_factory) -> Path:
    """An untrained tiny model's checkpoint (what eval and predict need: the config and the weights)."""
    cfg = load_config(TINY, [f"data.root={root}"])
    method = build.build_method(cfg, build.build_model(cfg))
    path = tmp_path_factory.mktemp("checkpoint") / "untrained.pt"
    save_checkpoint({"config": config_to_dict(cfg), "method": method.state_dict(), "step": 0}, path)
    return path


def val_annotations(root: Path) -> dict:
    return json.loads((root / "annotations" / "person_keypoints_val.json").read_text())


def oracle(ground_truth: dict, score: float = 0.9):
    """A stand-in for ``predict``: each person's keypoints are the ground truth of the image's one person
    (for images outside the annotation file, as in ``predict``, a fixed pose)."""
    truth = {a["image_id"]: np.reshape(a["keypoints"], (K, 3))[:, :2] for a in ground_truth["annotations"]}

    def predict(model, dataset, codec, **kwargs) -> Predictions:
        people = dataset.instances
        return Predictions(
            ann_id=np.array([p.ann_id for p in people]),
            image_id=np.array([p.image_id for p in people]),
            keypoints=np.stack([truth.get(p.image_id, np.full((K, 2), 10.0)) for p in people]).astype(
                np.float32
            ),
            scores=np.full((len(people), K), score, np.float32),
            box_score=np.array([p.box_score for p in people], np.float32),
        )

    return predict


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def printed_ap(out: str) -> float:
    """The AP cell of the metrics table ``| AP | AP50 | ... |`` printed last."""
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    return float(rows[-1].split("|")[1])


def pycocotools_ap(ann_file: Path, results_file: Path) -> float:
    """pycocotools run directly, over every image of the annotation file."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann_file))
        evaluator = COCOeval(gt, gt.loadRes(str(results_file)), iouType="keypoints")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return 100.0 * evaluator.stats[0]


def coco_metrics(predictions: Predictions, annotations, image_ids=None) -> dict[str, float]:
    """What an Evaluator scores: the predictions' COCO results against every image of ``annotations``."""
    results = keypoint_results(predictions, COCO17.sigmas)
    return evaluate_coco_keypoints(annotations, results, sigmas=COCO17.sigmas, image_ids=image_ids)
