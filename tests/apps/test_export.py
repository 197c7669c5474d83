"""ONNX export: parity with PyTorch, the sidecar, and predict / eval through onnxruntime (apps/export.py, apps/predictor.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from trspose.apps import jobs
from trspose.apps.predictor import load_model
from trspose.cli import main
from trspose.data.coco import load_coco_instances
from trspose.data.keypoints import COCO17
from trspose.engine import build
from trspose.evaluation.inference import predict_crops

pytestmark = pytest.mark.slow  # an ONNX export takes seconds; the module's tests take about 11 s


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export")
    assert main(["export", str(trained), "--out", str(out)]) == 0
    return out / "model.onnx"


def test_exported_model_matches_pytorch_on_real_synthetic_crops(trained, exported, tiny_dataset):
    from trspose.apps.predictor import OnnxPoseModel

    cfg, model = load_model(trained)
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
    cfg, _ = load_model(trained)
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

    from trspose.apps.export import HeatmapNetwork, write_onnx
    from trspose.apps.predictor import OnnxPoseModel
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


def test_a_sidecar_of_another_model_is_one_line_and_an_older_one_without_a_hash_still_runs(
    exported, stick_root, tmp_path, capsys, caplog
):
    import shutil

    meta = json.loads(exported.with_suffix(".json").read_text())
    assert len(meta["onnx_sha256"]) == 64
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    shutil.copy(exported, foreign / "model.onnx")
    # another export's sidecar: the same crop size and keypoints, another network
    (foreign / "model.json").write_text(json.dumps({**meta, "onnx_sha256": "0" * 64}))
    images = str(stick_root / "images" / "val")
    for command in (["predict", str(foreign / "model.onnx"), images, "--out", str(tmp_path / "p")],
                    ["eval", str(foreign / "model.onnx")]):  # fmt: skip
        assert main(command) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "belongs to another model" in err and "\n" not in err
    assert not (tmp_path / "p").exists()
    older = {key: value for key, value in meta.items() if key != "onnx_sha256"}
    (foreign / "model.json").write_text(json.dumps(older))
    assert main(["predict", str(foreign / "model.onnx"), images, "--out", str(tmp_path / "p")]) == 0
    assert "names no onnx_sha256" in caplog.text
