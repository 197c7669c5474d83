"""MPII and AI Challenger annotations turned into COCO keypoints files (data/convert.py, ``trspose convert``)."""

from __future__ import annotations

import json

import pytest

from tests.stick_figures import write_stick_figure_dataset
from tests.tiny_runs import TINY
from trspose.cli import main
from trspose.data.coco import load_coco_instances
from trspose.data.keypoints import AIC14, MPII16


@pytest.fixture
def sticks(tmp_path):
    root = write_stick_figure_dataset(tmp_path / "sticks", num_train=4, num_val=3)
    return root, json.loads((root / "annotations" / "person_keypoints_train.json").read_text())


def mpii_entries(coco: dict) -> list[dict]:
    """Each stick figure in MPII's form: its first 16 points as the 16 joints, the last one left unlabelled."""
    names = {image["id"]: image["file_name"] for image in coco["images"]}
    entries = []
    for ann in coco["annotations"]:
        points = [ann["keypoints"][3 * k : 3 * k + 2] for k in range(16)]
        x, y, w, h = ann["bbox"]
        entries.append({"image": names[ann["image_id"]], "joints": points, "joints_vis": [1] * 15 + [0],
                        "center": [x + w / 2, y + h / 2], "scale": h / 200})  # fmt: skip
    return entries


def test_mpii_annotations_become_a_coco_file_that_trains_with_the_mpii16_layout(sticks, tmp_path, capsys):
    root, coco = sticks
    source = tmp_path / "mpii_train.json"
    source.write_text(json.dumps(mpii_entries(coco)))
    out = tmp_path / "mpii" / "annotations" / "person_keypoints_train.json"
    assert main(["convert", str(source), "--images", str(root / "images" / "train"), "--out", str(out)]) == 0
    assert "4 people in 4 images (mpii; data.keypoints=mpii16)" in capsys.readouterr().out
    converted = json.loads(out.read_text())
    assert converted["categories"][0]["keypoints"] == list(MPII16.names)
    first = converted["annotations"][0]
    # MPII's 1-based pixels become 0-based ones
    assert first["keypoints"][:3] == [round(v - 1, 2) for v in coco["annotations"][0]["keypoints"][:2]] + [
        2.0
    ]
    assert first["keypoints"][-3:] == [0.0, 0.0, 0.0] and first["num_keypoints"] == 15  # joints_vis 0
    assert (
        converted["images"][0]["width"] == 80 and converted["images"][0]["height"] == 96
    )  # read from the image
    people = load_coco_instances(out, root / "images" / "train", MPII16)
    assert len(people) == 4 and people[0].keypoints.shape == (16, 3)
    # and it trains: the converted file as both splits, with the MPII layout
    args = ["train", str(TINY), f"data.root={tmp_path / 'mpii'}", f"output_dir={tmp_path / 'runs'}",
            "data.keypoints=mpii16", f"data.train_images={root / 'images' / 'train'}",
            "data.val_annotations=annotations/person_keypoints_train.json",
            f"data.val_images={root / 'images' / 'train'}", "train.steps=2"]  # fmt: skip
    assert main(args) == 0
    final = json.loads((tmp_path / "runs" / "tiny" / "final_metrics.json").read_text())
    assert "val/PCKh" in final and "val/AP" in final


def test_ai_challenger_annotations_map_its_visibility_to_cocos(sticks, tmp_path):
    root, coco = sticks
    names = {image["id"]: image["file_name"] for image in coco["images"]}
    entries = []
    for ann in coco["annotations"][:2]:
        values = []
        for k in range(14):
            x, y = ann["keypoints"][3 * k : 3 * k + 2]
            values += [x, y, (1, 2, 3)[k % 3]]  # visible, occluded, not labelled
        x, y, w, h = ann["bbox"]
        entries.append({"image_id": names[ann["image_id"]].removesuffix(".jpg"),
                        "keypoint_annotations": {"human1": values}, "human_annotations": {"human1": [x, y, x + w, y + h]}})  # fmt: skip
    source = tmp_path / "aic.json"
    source.write_text(json.dumps(entries))
    out = tmp_path / "aic_coco.json"
    assert main(["convert", str(source), "--images", str(root / "images" / "train"), "--out", str(out)]) == 0
    converted = json.loads(out.read_text())
    assert converted["annotations"][0]["keypoints"][2::3][:3] == [2.0, 1.0, 0.0]
    assert converted["annotations"][0]["bbox"] == [round(v, 2) for v in coco["annotations"][0]["bbox"]]
    assert len(load_coco_instances(out, root / "images" / "train", AIC14)) == 2


@pytest.mark.parametrize("content, message", [
    ('{"images": []}', "is neither MPII's JSON"),
    ('[{"image": "a.jpg", "joints": [[1, 2]], "joints_vis": [1], "center": [1, 1], "scale": 1}]',
     "joints and joints_vis must list the 16 MPII joints"),
    ('[{"image": "missing.jpg", "joints": [[1, 2]], "joints_vis": [1]}]', "must have image, joints, joints_vis, center and scale"),
    ('[{"image": "a.jpg", "joints": ' + str([[1, 2]] * 16) + ', "joints_vis": ' + str([1] * 16) + ', "center": 5, "scale": 1}]',
     "center must be [x, y], got 5"),
    ('[{"image_id": "a", "keypoint_annotations": [], "human_annotations": {}}]',
     "keypoint_annotations and human_annotations must map each human"),
])  # fmt: skip
def test_a_bad_source_file_is_one_line_and_writes_nothing(tmp_path, capsys, content, message):
    source = tmp_path / "bad.json"
    source.write_text(content)
    out = tmp_path / "out.json"
    assert main(["convert", str(source), "--images", str(tmp_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "bad.json" in err and message in err and "\n" not in err
    assert not out.exists()
