"""Issue 16 through the CLI: detector-box evaluation counts every image, bad files stop with one line before
anything runs, and the overlays say what they show. An untrained checkpoint and a stand-in model that
predicts the ground truth keep these fast."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from tests.stick_figures import write_stick_figure_dataset
from tests.tiny_runs import tiny_semi_config
from trspose.apps import jobs
from trspose.cli import main
from trspose.config import config_to_dict, load_config
from trspose.data.keypoints import COCO17
from trspose.data.sources import load_instances
from trspose.engine import build
from trspose.engine.checkpoint import save_checkpoint
from trspose.engine.distributed import DistributedContext
from trspose.errors import ConfigError
from trspose.evaluation import inference
from trspose.evaluation.coco_eval import evaluate_coco_keypoints
from trspose.evaluation.inference import Predictions, keypoint_results

TINY = Path(__file__).parents[2] / "configs" / "tiny.yaml"
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


def test_eval_with_detector_boxes_counts_the_images_without_detections(
    root, checkpoint, tmp_path, capsys, monkeypatch
):
    """Case 1: with detections for half the images the printed AP rose (100 here) while pycocotools over all
    images gave about half; and --results held the detections before OKS-NMS, not what was scored."""
    gt = val_annotations(root)
    monkeypatch.setattr(inference, "predict", oracle(gt))
    detections = [{"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 0.9}
                  for a in gt["annotations"][:3]]  # fmt: skip
    detections.append({**detections[0], "score": 0.5})  # a duplicate person: OKS-NMS removes it
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps(detections))
    ann, results = root / "annotations" / "person_keypoints_val.json", tmp_path / "results.json"
    code, out, err = run_cli(capsys, "eval", checkpoint, "--annotations", ann, "--images", root / "images" / "val",
                             "--boxes", dets, "--results", results)  # fmt: skip
    assert code == 0, err
    written = json.loads(results.read_text())
    assert len(written) == 3  # what the table scored: the duplicate is gone
    direct = pycocotools_ap(ann, results)
    assert printed_ap(out) == pytest.approx(direct, abs=0.05)
    assert 40.0 < direct < 60.0  # three of six people found


def coco_metrics(predictions: Predictions, annotations, image_ids=None) -> dict[str, float]:
    """What an Evaluator scores: the predictions' COCO results against every image of ``annotations``."""
    results = keypoint_results(predictions, COCO17.sigmas)
    return evaluate_coco_keypoints(annotations, results, sigmas=COCO17.sigmas, image_ids=image_ids)


def test_coco_metrics_score_every_image_of_the_ground_truth_or_the_given_subset(root):
    gt = val_annotations(root)
    people = gt["annotations"][:3]  # predictions for the first three images only
    predictions = Predictions(
        ann_id=np.arange(1, 4), image_id=np.array([a["image_id"] for a in people]),
        keypoints=np.array([np.reshape(a["keypoints"], (K, 3))[:, :2] for a in people], np.float32),
        scores=np.full((3, K), 0.9, np.float32), box_score=np.ones(3, np.float32),
    )  # fmt: skip
    ann = root / "annotations" / "person_keypoints_val.json"
    everything = coco_metrics(predictions, ann)
    assert everything["AP"] < 0.6 and everything["AR"] == pytest.approx(0.5)
    subset = coco_metrics(predictions, ann, image_ids=[a["image_id"] for a in people])
    assert subset["AP"] == pytest.approx(1.0)


def test_eval_max_images_restricts_ground_truth_and_predictions_to_the_same_images(root, tmp_path):
    cfg = load_config(TINY, [f"data.root={root}", f"output_dir={tmp_path}", "eval.max_images=2"])
    run = build.build_training_run(cfg, None, DistributedContext())
    first_two = sorted(image["id"] for image in val_annotations(root)["images"])[:2]
    assert run.validation.image_ids == first_two
    assert sorted({inst.image_id for inst in run.validation.dataset.instances}) == first_two


def test_a_best_reviewer_without_a_labeled_hold_out_is_a_config_error(root, tmp_path):
    """TRS's default reviewer is chosen on the hold-out: without one it would silently never be used."""
    message = r"policy=best scores the teacher on the labelled hold-out, .* none"
    for holdout in ("data.holdout_fraction=0", "data.num_labeled=2"):  # tiny's 0.2 of 2 people rounds to none
        cfg = tiny_semi_config(root, tmp_path, "trs", holdout)
        with pytest.raises(ConfigError, match=message):
            build.build_training_run(cfg, None, DistributedContext())
    slow_ema = tiny_semi_config(
        root, tmp_path, "trs", "data.num_labeled=2", "method.reviewer.policy=slow_ema"
    )
    assert build.build_training_run(slow_ema, None, DistributedContext()).holdout is None


def broken_copies(root: Path, tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Dataset copies, each with one problem in its validation split, and the message each must give."""
    cases = {}

    def copy_with(name, change_annotations=None, change_images=None):
        target = tmp_path / name
        shutil.copytree(root, target)
        if change_annotations is not None:
            path = target / "annotations" / "person_keypoints_val.json"
            data = json.loads(path.read_text())
            change_annotations(data)
            path.write_text(json.dumps(data).replace("123456.5", "NaN"))
        if change_images is not None:
            change_images(target / "images" / "val")
        return target

    def nan_keypoint(data):
        data["annotations"][1]["keypoints"][3] = 123456.5

    def no_flags(data):
        data["annotations"][2]["keypoints"][2::3] = [0] * K

    cases["nan"] = copy_with("nan", nan_keypoint), r"annotation id 10020: keypoints\[3\] is NaN"
    cases["num_keypoints"] = copy_with("flags", no_flags), "annotation id 10030: num_keypoints is 17 but 0"
    cases["categories"] = copy_with("nocat", lambda d: d.pop("categories")), "lacks 'categories'"
    cases["empty image"] = (
        copy_with("empty", change_images=lambda d: (d / "001002.jpg").write_bytes(b"")),
        r"001002.jpg: empty image file \(0 bytes\)",
    )
    return cases


def one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_bad_validation_files_stop_train_before_the_first_step_and_eval_in_one_line(root, checkpoint, tmp_path,
                                                                                   capsys):  # fmt: skip
    """Cases 2-5: NaN keypoints trained into a non-finite loss blamed on the learning rate; a file without
    categories crashed in pycocotools after every training step; an empty image was a cv2.error traceback."""
    for name, (data_root, message) in broken_copies(root, tmp_path).items():
        out_dir = tmp_path / f"runs_{name}"
        code, _, err = run_cli(capsys, "train", TINY, f"data.root={data_root}", f"output_dir={out_dir}")
        assert code == 2 and re.search(message, one_error_line(err)), (name, err)
        assert not (out_dir / "tiny").exists(), name  # nothing trained, no run folder to --overwrite later
        code, _, err = run_cli(capsys, "eval", checkpoint, "--annotations",
                               data_root / "annotations" / "person_keypoints_val.json")  # fmt: skip
        assert code == 2 and re.search(message, one_error_line(err)), (name, err)


def test_non_image_files_named_in_an_annotation_file_are_one_line_errors(root, checkpoint, tmp_path, capsys):
    """Case 5: a zero-byte file crashed eval with a cv2.error; preview-dataset crashed with AttributeError."""
    data_root = tmp_path / "data"
    shutil.copytree(root, data_root)
    image = data_root / "images" / "val" / "001001.jpg"
    ann = data_root / "annotations" / "person_keypoints_val.json"
    for content, message in [(b"", r"001001.jpg: empty image file"),
                             (b"just some text", r"001001.jpg: not a readable image")]:  # fmt: skip
        image.write_bytes(content)
        code, _, err = run_cli(capsys, "eval", checkpoint, "--annotations", ann)
        assert code == 2 and re.search(message, one_error_line(err))
        code, _, err = run_cli(capsys, "preview-dataset", data_root, "--out", tmp_path / "preview")
        assert code == 2 and re.search(message, one_error_line(err))


def test_preview_dataset_on_truncated_json_or_a_folder_not_in_coco_layout(root, tmp_path, capsys):
    """Case 5: JSONDecodeError and FileNotFoundError tracebacks."""
    data_root = tmp_path / "data"
    shutil.copytree(root, data_root)
    ann = data_root / "annotations" / "person_keypoints_val.json"
    ann.write_text(ann.read_text()[:150])
    code, _, err = run_cli(capsys, "preview-dataset", data_root, "--out", tmp_path / "preview")
    assert code == 2 and "person_keypoints_val.json: malformed JSON at line 1" in one_error_line(err)
    (tmp_path / "photos").mkdir()
    code, _, err = run_cli(capsys, "preview-dataset", tmp_path / "photos", "--out", tmp_path / "preview")
    assert code == 2 and "photos: not a dataset in COCO layout" in one_error_line(err)
    code, out, err = run_cli(capsys, "preview-dataset", root, "--out", tmp_path / "preview")
    assert code == 0, err
    assert "pose_modes" not in out  # real (non-synthetic) data has no pose modes: no '?' row


def test_eval_overlays_print_the_number_drawn_and_say_when_nothing_is_above_the_threshold(
    root, checkpoint, tmp_path, capsys, monkeypatch
):
    """'predicted skeletons on 12 validation images' was printed for a set of 6; blank overlays had no hint."""
    monkeypatch.setattr(inference, "predict", oracle(val_annotations(root), score=0.1))
    code, out, err = run_cli(capsys, "eval", checkpoint, "--overlays", tmp_path / "overlays")
    assert code == 0, err
    assert "predicted skeletons on 6 validation images" in out
    assert "note: every predicted keypoint scores at most 0.10, not above the drawing threshold 0.3" in out
    jobs.predict_images(checkpoint, [str(root / "images" / "val")], boxes=None, out_dir=tmp_path / "pred",
                        score_threshold=0.05)  # fmt: skip
    assert "note:" not in capsys.readouterr().out  # 0.1 is drawn at threshold 0.05
    jobs.predict_images(checkpoint, [str(root / "images" / "val")], boxes=None, out_dir=tmp_path / "pred")
    assert "lower --score-threshold to see them" in capsys.readouterr().out


def test_predict_accepts_a_dataset_wide_detections_file_for_some_of_its_images(
    root, checkpoint, tmp_path, capsys
):
    """It refused a detections file naming images not given on the command line."""
    names = sorted(p.name for p in (root / "images" / "val").iterdir())
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({name: [[5, 5, 40, 60, 0.9]] for name in names}))
    one = root / "images" / "val" / names[0]
    out = jobs.predict_images(checkpoint, [str(one)], boxes=str(boxes), out_dir=tmp_path / "pred")
    results = json.loads((out / "predictions.json").read_text())
    assert [r["file_name"] for r in results] == [names[0]]


def test_the_stand_in_model_predicting_the_ground_truth_scores_100(root):
    """The stand-in behind the tests above: ground truth as predictions, with ground-truth boxes, is AP 1."""
    cfg = load_config(TINY, [f"data.root={root}"])
    instances = load_instances(build.resolve_data(cfg), COCO17, "val")
    predictions = oracle(val_annotations(root))(None, build.build_dataset(cfg, instances, train=False), None)
    metrics = coco_metrics(predictions, root / "annotations" / "person_keypoints_val.json")
    assert metrics["AP"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "content, message",
    [(b"", "not a readable image"), (b"GIF89a not really", "not a readable image"),
     (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not a readable image")],
)  # fmt: skip
def test_predict_on_bytes_that_are_no_image_is_one_line(checkpoint, tmp_path, capsys, content, message):
    (tmp_path / "photo.png").write_bytes(content)
    code, _, err = run_cli(capsys, "predict", checkpoint, tmp_path / "photo.png", "--out", tmp_path / "out")
    assert code == 2 and "photo.png: " + message in one_error_line(err)
