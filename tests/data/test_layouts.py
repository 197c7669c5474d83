"""Keypoint layouts other than COCO-17: presets, spec files, left/right pairs from names, and a 5-keypoint animal
trained, evaluated, predicted and exported end to end (data/keypoints.py)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from tests.stick_figures import write_stick_figure_dataset
from tests.tiny_runs import TINY
from trspose.cli import main
from trspose.config import load_config
from trspose.data.keypoints import COCO17, DEFAULT_SIGMA, SPECS, infer_flip_pairs, load_layout
from trspose.engine import build
from trspose.engine.checkpoint import load_checkpoint
from trspose.errors import ConfigError


@pytest.mark.parametrize("name, size", [("coco17", 17), ("mpii16", 16), ("aic14", 14), ("crowdpose14", 14)])
def test_presets_pair_each_left_keypoint_with_its_right_partner(name, size):
    spec = SPECS[name]
    assert spec.num_keypoints == len(spec.sigmas) == size and all(s > 0 for s in spec.sigmas)
    assert all(0 <= a < size and 0 <= b < size for a, b in spec.skeleton)
    for left, right in spec.flip_pairs:
        assert spec.names[left].replace("left", "right") == spec.names[right]
    unpaired = {n for n in spec.names if "left" not in n and "right" not in n}
    assert len(spec.flip_pairs) == (size - len(unpaired)) // 2  # every sided keypoint has its partner


def test_left_right_pairs_are_inferred_from_the_usual_spellings():
    assert infer_flip_pairs(COCO17.names) == COCO17.flip_pairs
    names = ["snout", "L_paw", "R_paw", "ear_left", "ear_right", "leftWing", "rightWing", "tail_l", "spine"]
    assert infer_flip_pairs(names) == ((1, 2), (3, 4), (5, 6))  # tail_l has no partner: not paired


def write_spec(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("text, message", [
    ("names: [a, b]\nflip_pairs: [[a, c]]\n", "flip_pairs\\[0\\] names 'c', which is not one of the 2 keypoints"),
    ("names: [a, b]\nskeleton: [[0, 2]]\n", "skeleton\\[0\\] names 2, which is not one of the 2 keypoints"),
    ("names: [a, a]\n", "names must be unique; repeated: \\['a'\\]"),
    ("names: [a, b]\nsigmas: [0.1]\n", "'sigmas' must be 2 positive numbers"),
    ("skeleton: []\n", "needs 'names'"),
    ("names: [a]\ncolours: [red]\n", "unknown key\\(s\\) \\['colours'\\]"),
])  # fmt: skip
def test_a_bad_spec_file_is_one_error_naming_the_file_and_the_entry(tmp_path, text, message):
    spec = write_spec(tmp_path / "animal.yaml", text)
    with pytest.raises(ConfigError, match=f"animal.yaml: .*{message}"):
        load_config(overrides=[f"data.keypoints={spec}"])


def test_a_spec_without_sigmas_uses_the_default_with_one_warning(tmp_path, caplog):
    spec = write_spec(tmp_path / "hand.yaml", "names: [thumb, index, wrist]\nskeleton: [[thumb, wrist]]\n")
    with caplog.at_level(logging.WARNING):
        layout = load_layout(spec)
    assert layout.sigmas == (DEFAULT_SIGMA,) * 3 and layout.skeleton == ((0, 2),) and layout.flip_pairs == ()
    assert caplog.text.count("gives no OKS sigmas") == 1


ANIMAL = """names: [snout, left_paw, right_paw, left_foot, right_foot]
skeleton: [[left_paw, left_foot], [right_paw, right_foot], [snout, left_paw], [snout, right_paw]]
sigmas: [0.05, 0.06, 0.06, 0.07, 0.07]
"""
KEEP = [0, 9, 10, 15, 16]  # the stick figures' nose, wrists and ankles


def animal_dataset(root: Path, spec: str, keep: list[int] = KEEP) -> Path:
    """The stick figures with five of their keypoints, under the animal layout's category."""
    write_stick_figure_dataset(root)
    category = {**load_layout(spec).coco_category()}
    for split in ("train", "val"):
        path = root / "annotations" / f"person_keypoints_{split}.json"
        data = json.loads(path.read_text())
        for ann in data["annotations"]:
            ann["keypoints"] = [v for k in keep for v in ann["keypoints"][3 * k : 3 * k + 3]]
            ann["num_keypoints"] = len(keep)
        data["categories"] = [category]
        path.write_text(json.dumps(data))
    return root


@pytest.mark.slow
def test_a_five_keypoint_animal_trains_evaluates_predicts_and_exports_and_its_checkpoint_carries_the_layout(
    stick_root, tmp_path, capsys
):
    spec = write_spec(tmp_path / "animal.yaml", ANIMAL)
    root = animal_dataset(tmp_path / "animal", spec)
    args = [
        "train",
        str(TINY),
        f"data.root={root}",
        f"output_dir={tmp_path}",
        "train.steps=3",
        f"data.keypoints={spec}",
    ]
    assert main(args) == 0
    checkpoint = tmp_path / "tiny" / "checkpoints" / "last.pt"
    layout = load_checkpoint(checkpoint)["config"]["data"]["layout"]
    assert layout["names"] == ["snout", "left_paw", "right_paw", "left_foot", "right_foot"]
    assert layout["flip_pairs"] == [[1, 2], [3, 4]] and layout["sigmas"] == [0.05, 0.06, 0.06, 0.07, 0.07]
    Path(spec).unlink()  # the checkpoint needs the spec file no more
    assert (
        main(["predict", str(checkpoint), str(root / "images" / "val"), "--out", str(tmp_path / "pred")]) == 0
    )
    predictions = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert predictions and all(len(p["keypoints"]) == 3 * 5 for p in predictions)
    assert main(["export", str(checkpoint), "--out", str(tmp_path / "onnx")]) == 0
    assert json.loads((tmp_path / "onnx" / "model.json").read_text())["keypoints"] == layout["names"]
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "onnx" / "model.onnx"), "--per-keypoint", str(tmp_path / "pk")]) == 0
    per_keypoint = json.loads((tmp_path / "pk" / "per_keypoint.json").read_text())
    assert list(per_keypoint["keypoints"]) == layout["names"]
    # the model's layout against annotations of another one: one line naming both
    ann = stick_root / "annotations" / "person_keypoints_val.json"
    assert main(["eval", str(checkpoint), "--annotations", str(ann)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "another layout (17: nose, left_eye" in err and "(5: snout, left_paw" in err


def test_the_keypoint_spec_of_a_config_is_its_layout(tmp_path):
    cfg = load_config(TINY, ["data.keypoints=mpii16"])
    spec = build.keypoint_spec(cfg)
    assert spec == SPECS["mpii16"] and spec.flip_index()[0] == 5  # right ankle <-> left ankle


def test_a_layout_with_a_head_segment_is_also_scored_by_pckh(tmp_path, capsys):
    spec = write_spec(tmp_path / "upper.yaml", "names: [head_top, upper_neck, left_wrist, right_wrist]\n")
    root = animal_dataset(
        tmp_path / "upper", spec, keep=[0, 5, 9, 10]
    )  # nose as head top, a shoulder as neck
    assert main(["train", str(TINY), f"data.root={root}", f"output_dir={tmp_path}", "train.steps=2",
                 f"data.keypoints={spec}"]) == 0  # fmt: skip
    capsys.readouterr()
    from trspose.apps import jobs

    metrics = jobs.evaluate_checkpoint(tmp_path / "tiny" / "checkpoints" / "last.pt")
    assert 0.0 <= metrics["PCKh"] <= 100.0
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| AP")]
    assert table and table[-1].rstrip(" |").endswith("PCKh")
    final = json.loads((tmp_path / "tiny" / "final_metrics.json").read_text())
    assert "val/PCKh" in final  # logged during training too


def test_a_recorded_layout_must_be_the_presets_it_names(tmp_path):
    from trspose.config import config_from_dict, config_to_dict

    saved = config_to_dict(load_config(TINY))  # a run's config.yaml: the coco17 layout recorded
    assert config_from_dict(saved).data.layout.names == list(COCO17.names)
    saved["data"]["keypoints"] = "mpii16"
    with pytest.raises(
        ConfigError, match="data.layout .* is not the layout of data.keypoints 'mpii16' .*remove"
    ):
        config_from_dict(saved)
    saved["data"]["layout"]["sigmas"] = [0.1]  # a broken recorded layout: one line, not a traceback later
    saved["data"]["keypoints"] = "coco17"
    with pytest.raises(ConfigError, match="data.layout: 'sigmas' must be 17 positive numbers"):
        config_from_dict(saved)


@pytest.mark.slow
def test_the_mpii16_synthetic_people_train_evaluate_with_pckh_predict_on_a_video_and_export(
    tiny_mpii_dataset, tmp_path, capsys
):
    import cv2

    names = list(SPECS["mpii16"].names)
    run = ["train", str(TINY), f"data.root={tiny_mpii_dataset}", "data.keypoints=mpii16", f"output_dir={tmp_path}",
           "train.steps=3"]  # fmt: skip
    assert main(run) == 0
    checkpoint = tmp_path / "tiny" / "checkpoints" / "last.pt"
    capsys.readouterr()
    assert main(["eval", str(checkpoint)]) == 0
    header = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| AP")][-1]
    assert header.rstrip(" |").endswith("PCKh")
    val_images = tiny_mpii_dataset / "images" / "val"
    assert main(["predict", str(checkpoint), str(val_images), "--out", str(tmp_path / "images")]) == 0
    predicted = json.loads((tmp_path / "images" / "predictions.json").read_text())
    assert predicted and all(len(p["keypoints"]) == 3 * len(names) for p in predicted)
    frames = sorted(val_images.glob("*.jpg"))[:4]
    video = tmp_path / "walk.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5, (384, 288))
    for frame in frames:
        writer.write(cv2.imread(str(frame)))
    writer.release()
    assert main(["predict", str(checkpoint), str(video), "--out", str(tmp_path / "video")]) == 0
    rows = (tmp_path / "video" / "walk.csv").read_text().splitlines()
    assert rows[1].split(",")[2::3] == names and len(rows) == 3 + len(frames)
    assert main(["export", str(checkpoint), "--out", str(tmp_path / "onnx")]) == 0
    assert json.loads((tmp_path / "onnx" / "model.json").read_text())["keypoints"] == names


def test_the_synthetic_dataset_is_rendered_in_coco17_or_mpii16_only(tmp_path, capsys):
    args = ["train", str(TINY), "data.dataset=synthetic", "data.keypoints=aic14", f"output_dir={tmp_path}"]
    assert main(args) == 2
    assert capsys.readouterr().err.strip() == ("error: the synthetic dataset has no 'aic14' layout: choose one of "
                                               "coco17, mpii16 (data.keypoints), or train on your own files "
                                               "(data.dataset=coco)")  # fmt: skip
    assert not (tmp_path / "tiny").exists()


def test_by_default_the_layout_is_the_training_files_keypoint_category(tmp_path, caplog):
    root = animal_dataset(tmp_path / "animal", write_spec(tmp_path / "animal.yaml", ANIMAL))
    with caplog.at_level(logging.WARNING):
        cfg = load_config(TINY, [f"data.root={root}"])  # data.keypoints: auto, the default
    layout = cfg.data.layout
    assert layout.names == ["snout", "left_paw", "right_paw", "left_foot", "right_foot"]
    assert layout.skeleton == [[1, 3], [2, 4], [0, 1], [0, 2]]  # the file's, 1-based there
    assert (
        layout.flip_pairs == [[1, 2], [3, 4]] and layout.sigmas == [DEFAULT_SIGMA] * 5
    )  # inferred, the default
    assert cfg.data.keypoints == "auto" and caplog.text.count("have no OKS sigmas") == 1
    # a file with a preset's names gets the preset, named as such in the run's config
    sticks = write_stick_figure_dataset(tmp_path / "sticks")
    assert load_config(TINY, [f"data.root={sticks}"]).data.keypoints == "coco17"
    assert load_config(TINY).data.keypoints == "coco17"  # nothing to read yet: the loader speaks later


@pytest.mark.slow
def test_a_file_of_another_layout_trains_with_no_keypoint_setting_and_its_checkpoint_carries_it(tmp_path):
    root = animal_dataset(tmp_path / "animal", write_spec(tmp_path / "animal.yaml", ANIMAL))
    assert main(["train", str(TINY), f"data.root={root}", f"output_dir={tmp_path}", "train.steps=2"]) == 0
    layout = load_checkpoint(tmp_path / "tiny" / "checkpoints" / "last.pt")["config"]["data"]["layout"]
    assert layout["names"][0] == "snout" and len(layout["names"]) == 5
    assert main(["eval", str(tmp_path / "tiny" / "checkpoints" / "last.pt")]) == 0


@pytest.mark.parametrize(
    "spoil, message",
    [
        (lambda d: d["annotations"][1].update(keypoints=d["annotations"][1]["keypoints"][:-3]),
         ": keypoints must be 15 numbers, got a list of 12 values (5 keypoints x 3)"),
        (lambda d: d["categories"][0].update(skeleton=[[1, 2], [1, 9]]),
         "the keypoint category's skeleton[1] is [1, 9]; a COCO skeleton pairs keypoint numbers from 1 to 5"),
    ],
)  # fmt: skip
def test_a_file_at_odds_with_its_own_category_is_one_line_and_no_run_folder(spoil, message, tmp_path, capsys):
    root = animal_dataset(tmp_path / "animal", write_spec(tmp_path / "animal.yaml", ANIMAL))
    path = root / "annotations" / "person_keypoints_train.json"
    data = json.loads(path.read_text())
    spoil(data)
    path.write_text(json.dumps(data))
    assert main(["train", str(TINY), f"data.root={root}", f"output_dir={tmp_path / 'runs'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {path}: ") and message in err[0]
    assert not (tmp_path / "runs" / "tiny").exists()


def test_a_category_that_lists_no_keypoint_names_is_read_as_coco17(tmp_path):
    sticks = write_stick_figure_dataset(tmp_path / "sticks")
    for split in ("train", "val"):
        path = sticks / "annotations" / f"person_keypoints_{split}.json"
        data = json.loads(path.read_text())
        data["categories"] = [{"id": 1, "name": "person"}]
        path.write_text(json.dumps(data))
    assert load_config(TINY, [f"data.root={sticks}"]).data.keypoints == "coco17"
