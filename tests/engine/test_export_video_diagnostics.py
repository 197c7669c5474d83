"""Using a trained model outside training: ONNX export (parity with PyTorch), video prediction, per-keypoint
diagnostics and worst cases."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tests.stick_figures import write_stick_figure_dataset
from trspose.cli import main
from trspose.config import load_config
from trspose.data.coco import PersonInstance, load_coco_instances
from trspose.data.keypoints import COCO17
from trspose.engine import build, jobs
from trspose.engine.inference import Predictions, predict_crops
from trspose.evaluation.per_keypoint import match_people, per_keypoint_metrics

REPO = Path(__file__).parents[2]
TINY = REPO / "configs" / "tiny.yaml"


@pytest.fixture(scope="module")
def stick_root(tmp_path_factory) -> Path:
    return write_stick_figure_dataset(tmp_path_factory.mktemp("sticks"))


@pytest.fixture(scope="module")
def trained(stick_root, tmp_path_factory) -> Path:
    """A tiny model trained a few steps (its weights are not random, so the parity test means something)."""
    out = tmp_path_factory.mktemp("runs")
    jobs.train(load_config(TINY, [f"data.root={stick_root}", f"output_dir={out}", "train.steps=20"]))
    return out / "tiny" / "checkpoints" / "last.pt"


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export")
    assert main(["export", str(trained), "--out", str(out)]) == 0
    return out / "model.onnx"


# --------------------------------------------------------------------------------------------- ONNX export


def test_exported_model_matches_pytorch_on_real_synthetic_crops(trained, exported, tiny_dataset):
    from trspose.export import OnnxPoseModel

    cfg, model = jobs.model_from_checkpoint(trained)
    spec = build.keypoint_spec(cfg)
    people = load_coco_instances(
        tiny_dataset / "annotations" / "person_keypoints_val.json", tiny_dataset / "images" / "val", spec
    )[:6]
    dataset = build.build_dataset(cfg, people, train=False)
    images = torch.stack([dataset[i].image for i in range(len(people))])  # (6, 3, 64, 64) normalised crops
    matrices = np.stack([dataset[i].crop_to_image for i in range(len(people))])
    runtime = OnnxPoseModel(exported)
    with torch.inference_mode():
        reference = model(images).heatmaps
    for batch in (1, 6):  # the batch dimension is dynamic
        torch.testing.assert_close(runtime(images[:batch]).heatmaps, reference[:batch], atol=1e-4, rtol=0)
    codec, flip = build.build_codec(cfg), spec.flip_index()
    ours, _ = predict_crops(model, images, matrices, codec, flip, cfg.eval.decode)
    theirs, _ = predict_crops(runtime, images, matrices, codec, flip, cfg.eval.decode)
    # A barely trained model has flat heatmaps, and where the crop runs off the image two heatmap pixels can be
    # exactly equal: there the argmax is a tie that 1e-7 of float noise decides. Compare where the peak is unique.
    top2 = reference.flatten(2).topk(2, dim=-1).values  # (B, K, 2)
    unique = (top2[..., 0] - top2[..., 1] > 1e-4).numpy()
    assert unique.mean() > 0.5
    assert np.abs(ours - theirs)[unique].max() <= 0.05  # image pixels, flip test and DARK decoding included


def test_sidecar_says_what_a_runtime_needs(exported, trained):
    meta = json.loads(exported.with_suffix(".json").read_text())
    cfg, _ = jobs.model_from_checkpoint(trained)
    assert meta["input"]["shape"] == ["batch", 3, 64, 64] and meta["input"]["channels"] == "RGB"
    assert meta["input"]["mean"] == cfg.model.pixel_mean and meta["input"]["std"] == cfg.model.pixel_std
    assert meta["output"] == {"name": "heatmaps", "shape": ["batch", 17, 16, 16], "stride": 4}
    assert meta["keypoints"] == list(COCO17.names) and len(meta["skeleton"]) == len(COCO17.skeleton)
    assert [tuple(p) for p in meta["flip_pairs"]] == list(COCO17.flip_pairs)
    assert meta["decoding"]["method"] == "dark" and meta["decoding"]["flip_test"] is True
    import onnx

    graph = onnx.load(str(exported)).graph
    assert [o.name for o in graph.output] == ["heatmaps"]  # MFL level heads are not outputs


@pytest.mark.parametrize("fuse_levels", [False, True])
def test_export_keeps_mfl_level_heads_only_when_the_model_fuses_them(fuse_levels, tmp_path):
    import onnx

    from trspose.export import HeatmapNetwork, OnnxPoseModel, write_onnx
    from trspose.models import build_pose_model

    torch.manual_seed(0)
    model = build_pose_model(backbone="resnet10t", num_keypoints=17, input_size=(64, 64), head="fpn",
                             mfl_levels=("stage2", "stage3"), fuse_levels=fuse_levels, channels_last=True).eval()  # fmt: skip
    path = write_onnx(HeatmapNetwork(model).eval(), (64, 64), tmp_path / "model.onnx")
    images = torch.randn(3, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(
            OnnxPoseModel(path)(images).heatmaps, model(images).heatmaps, atol=1e-4, rtol=0
        )
    graph = onnx.load(str(path)).graph
    assert [o.name for o in graph.output] == ["heatmaps"]
    level_weights = [init.name for init in graph.initializer if "level_heads" in init.name]
    assert (
        bool(level_weights) == fuse_levels
    )  # the level heads are in the graph only when they are averaged in


def test_predict_and_eval_through_onnx_agree_with_the_checkpoint(trained, exported, stick_root, tmp_path):
    images = str(stick_root / "images" / "val")
    assert main(["predict", str(trained), images, "--out", str(tmp_path / "torch")]) == 0
    assert main(["predict", str(exported), images, "--out", str(tmp_path / "onnx")]) == 0
    torch_results = json.loads((tmp_path / "torch" / "predictions.json").read_text())
    onnx_results = json.loads((tmp_path / "onnx" / "predictions.json").read_text())
    assert len(torch_results) == len(onnx_results) == 4
    for a, b in zip(torch_results, onnx_results):
        assert np.abs(np.array(a["keypoints"]) - np.array(b["keypoints"])).max() <= 0.05
    jobs.evaluate_checkpoint(exported, results_out=str(tmp_path / "onnx_results.json"))
    jobs.evaluate_checkpoint(trained, results_out=str(tmp_path / "torch_results.json"))
    scored = [json.loads((tmp_path / f"{name}_results.json").read_text()) for name in ("torch", "onnx")]
    assert len(scored[0]) == len(scored[1]) == 4  # eval scores the same people through onnxruntime
    for a, b in zip(*scored):
        assert a["image_id"] == b["image_id"] and np.allclose(a["keypoints"], b["keypoints"], atol=0.05)


def test_export_bad_input_is_one_line(trained, exported, tmp_path, capsys):
    assert main(["export", str(trained), "--out", str(tmp_path), "--opset", "12"]) == 2
    lone = tmp_path / "lone.onnx"
    lone.write_bytes(exported.read_bytes())  # no sidecar beside it
    assert main(["predict", str(lone), str(tmp_path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("error: ") and "opset" in lines[0]
    assert lines[-1].startswith("error: ") and "lone.json" in lines[-1]
    assert not (tmp_path / "model.onnx").exists()


# --------------------------------------------------------------------------------------------------- video


def _moving_person_video(stick_root: Path, path: Path, frames: int, step: int = 6) -> list[np.ndarray]:
    """A video of one validation stick figure sliding right ``step`` px a frame; returns its keypoints per frame."""
    ann = json.loads((stick_root / "annotations" / "person_keypoints_val.json").read_text())
    first = ann["annotations"][0]
    image_file = next(i["file_name"] for i in ann["images"] if i["id"] == first["image_id"])
    image = cv2.imread(str(stick_root / "images" / "val" / image_file))
    canvas = np.full((image.shape[0], image.shape[1] + step * frames, 3), 60, np.uint8)
    keypoints = np.array(first["keypoints"], np.float32).reshape(-1, 3)[:, :2]
    writer = cv2.VideoWriter(
        str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (canvas.shape[1], canvas.shape[0])
    )
    truth = []
    for t in range(frames):
        frame = canvas.copy()
        frame[:, t * step : t * step + image.shape[1]] = image
        writer.write(frame)
        truth.append(keypoints + [t * step, 0])
    writer.release()
    return truth


def test_video_prediction_follows_the_person_and_writes_json_csv_and_video(
    trained, stick_root, tmp_path, monkeypatch
):
    from trspose.engine import video

    truth = _moving_person_video(stick_root, tmp_path / "walk.mp4", frames=9)
    calls = []

    def oracle(model, images, crop_to_image, codec, flip_index, decode):
        """A stand-in network that knows where the person is (so the test checks the box following)."""
        frame = calls.__len__() * 2  # every=2: frames 0, 2, 4, ...
        calls.append(crop_to_image)
        return truth[frame][None].astype(np.float32), np.full((1, 17), 0.9, np.float32)

    monkeypatch.setattr(video, "predict_crops", oracle)
    paths = video.predict_video(
        trained, tmp_path / "walk.mp4", out_dir=tmp_path / "out", every=2, max_frames=4
    )
    results = json.loads(paths["predictions"].read_text())
    assert [r["frame"] for r in results] == [0, 2, 4, 6]
    assert results[0]["bbox"] == [0, 0, 134, 96]  # the first frame is taken whole
    for previous, result in zip([0, 2, 4], results[1:]):  # later boxes: around the previous frame's keypoints
        x, y, w, h = result["bbox"]
        points = truth[previous]
        assert x <= points[:, 0].min() and points[:, 0].max() <= x + w and w < 0.6 * 134
        assert y <= points[:, 1].min() and points[:, 1].max() <= y + h
    from trspose.data.geometry import affine_points

    for matrices, result in zip(calls, results):  # each crop is centred on its frame's box
        x, y, w, h = result["bbox"]
        centre = affine_points(np.array([[32.0, 32.0]]), matrices[0])[
            0
        ]  # the 64x64 crop's centre, in the frame
        assert np.allclose(centre, [x + w / 2, y + h / 2], atol=1.0)
    rows = list(csv.reader(paths["csv"].open()))
    assert [row[0] for row in rows[:3]] == ["scorer", "bodyparts", "coords"] and len(rows) == 3 + 4
    assert all(len(row) == 2 + 3 * 17 for row in rows)
    assert rows[2][2:5] == ["x", "y", "likelihood"] and rows[1][2] == "nose"
    assert float(rows[4][2]) == pytest.approx(truth[2][0, 0], abs=1e-2)
    capture = cv2.VideoCapture(str(paths["video"]))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 4


def test_video_through_the_cli_with_per_frame_boxes(trained, stick_root, tmp_path):
    _moving_person_video(stick_root, tmp_path / "walk.mp4", frames=3)
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"0": [[10, 5, 40, 80, 0.9]], "2": [[20, 5, 40, 80], [60, 5, 30, 60]]}))
    assert (
        main(
            [
                "predict",
                str(trained),
                str(tmp_path / "walk.mp4"),
                "--boxes",
                str(boxes),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 0
    )
    results = json.loads((tmp_path / "o" / "walk.predictions.json").read_text())
    assert [(r["frame"], r["person"]) for r in results] == [(0, 0), (2, 0), (2, 1)]  # frame 1 had no box
    boxes.write_text(json.dumps({"0": [["10", 5, 40, 80]]}))
    assert main(["predict", str(trained), str(tmp_path / "walk.mp4"), "--boxes", str(boxes)]) == 2


# ---------------------------------------------------------------------------------------- per-keypoint


def _people(n: int = 2) -> list[PersonInstance]:
    from tests.stick_figures import TEMPLATE

    people = []
    for i in range(n):
        points = TEMPLATE * [60, 120] + [100 * i, 0]
        keypoints = np.concatenate([points, np.full((17, 1), 2.0)], axis=1).astype(np.float32)
        people.append(PersonInstance(image_id=1, ann_id=i + 1, image_path=Path("x.png"),
                                     box=np.array([100 * i, 0, 60, 120], np.float32), keypoints=keypoints,
                                     area=60 * 120.0))  # fmt: skip
    return people


def _predictions(keypoints: list[np.ndarray]) -> Predictions:
    n = len(keypoints)
    return Predictions(ann_id=np.arange(n) + 101, image_id=np.ones(n, int), keypoints=np.stack(keypoints),
                       scores=np.ones((n, 17), np.float32), box_score=np.ones(n, np.float32))  # fmt: skip


def test_per_keypoint_numbers_come_out_as_constructed():
    people = _people()
    left_wrist, right_wrist, left_knee = (
        COCO17.names.index("left_wrist"),
        COCO17.names.index("right_wrist"),
        13,
    )
    first = people[0].keypoints[:, :2].copy()
    first[left_knee] += [9.0, 0.0]  # 9 px off: beyond 0.05 x 120 = 6 px, within 0.1 x 120 = 12 px
    second = people[1].keypoints[:, :2].copy()
    second[[left_wrist, right_wrist]] = second[[right_wrist, left_wrist]]  # left and right wrists swapped
    predictions = _predictions([second, first])  # not in ground-truth order: matching finds the pairs
    matched = match_people(predictions, people, COCO17.sigmas)
    assert sorted(matched.ann_id.tolist()) == [1, 2]
    metrics = per_keypoint_metrics(matched, COCO17.sigmas, COCO17.flip_index(), (256, 192))
    assert metrics["pck@0.05"][left_knee] == 0.5 and metrics["pck@0.1"][left_knee] == 1.0
    crop_px_per_image_px = 192 / (120 / (256 / 192) * 1.25)  # the 60x120 box's crop is 120 * 1.25 tall
    assert metrics["error_px"][left_knee] == pytest.approx(9.0 * crop_px_per_image_px / 2)
    assert metrics["swap_rate"][left_wrist] == metrics["swap_rate"][right_wrist] == 0.5
    untouched = [k for k in range(17) if k not in (left_wrist, right_wrist, left_knee)]
    assert np.all(metrics["oks"][untouched] == 1.0) and np.all(metrics["swap_rate"][untouched][1:] == 0.0)
    assert np.isnan(metrics["swap_rate"][0])  # the nose has no left/right partner


def test_a_prediction_that_drifted_onto_a_neighbour_stays_wrong_with_ground_truth_boxes():
    from trspose.evaluation.per_keypoint import pair_by_annotation, unmatched

    people = _people()
    drifted = _predictions(
        [people[1].keypoints[:, :2], people[1].keypoints[:, :2]]
    )  # both on the second person
    drifted.ann_id[:] = [1, 2]  # made on the boxes of person 1 and person 2
    by_box = pair_by_annotation(drifted, people, COCO17.sigmas)
    assert by_box.ann_id.tolist() == [1, 2] and by_box.oks[0] < 0.01 and by_box.oks[1] == 1.0
    by_oks = match_people(drifted, people, COCO17.sigmas)  # detector-box matching pairs it with person 2
    assert by_oks.ann_id.tolist() == [2] and [inst.ann_id for inst in unmatched(by_oks, people)] == [1]


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


def test_training_logs_per_keypoint_pck_at_each_evaluation(trained):
    records = [json.loads(line) for line in (trained.parents[1] / "metrics.jsonl").read_text().splitlines()]
    evaluations = [r for r in records if "val/AP" in r]
    assert evaluations and all(
        "val_pck/left_wrist" in r and 0 <= r["val_pck/left_wrist"] <= 100 for r in evaluations
    )


def test_worst_cases_of_a_semi_supervised_run_also_show_the_teachers_pseudo_labels(stick_root, tmp_path):
    cfg = load_config(TINY, [f"data.root={stick_root}", f"output_dir={tmp_path}", "method.name=trs",
                             "train.steps=4", "method.burn_in_steps=2", "method.rampup_steps=2",
                             "train.unlabeled_batch_size=2", "method.confidence_threshold=0.25"])  # fmt: skip
    jobs.train(cfg)
    assert (
        main(
            ["eval", str(tmp_path / "tiny" / "checkpoints" / "last.pt"), "--worst", "2", str(tmp_path / "w")]
        )
        == 0
    )
    pseudo = cv2.imread(str(tmp_path / "w" / "worst_pseudo_labels.png"))
    assert pseudo.shape == (256, 6 * 192 + 5 * 2, 3)  # one row: two training people, teacher beside truth
    assert cv2.imread(str(tmp_path / "w" / "worst.png")) is not None
