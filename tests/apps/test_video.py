"""Video prediction: following the person from frame to frame, per-frame boxes, JSON / CSV / video out
(apps/video.py)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from trspose.cli import main


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
    from trspose.apps import video

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
