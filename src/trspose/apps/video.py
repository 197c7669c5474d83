"""Pose prediction on videos: frame by frame, with person boxes from a detections file or followed from the
previous frame's keypoints.

Outputs in ``out_dir``, per video ``NAME``: ``NAME.predictions.json`` (COCO-style results with the frame index),
``NAME.csv`` (one row per frame and person, DeepLabCut / Lightning Pose column layout: three header rows
scorer / bodyparts / coords, then x, y, likelihood per keypoint) and ``NAME.skeletons.mp4`` (the frames with the
skeletons drawn).

Without ``--boxes`` the toolkit follows one person: the first frame is taken whole, each later frame's box is the
box of the previous frame's confident keypoints, enlarged; with too few confident keypoints it falls back to the
whole frame. It ships no detector: for several people, or people entering and leaving, give per-frame boxes.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from trspose.apps.drawing import draw_pose
from trspose.apps.predictor import load_model
from trspose.config import pixel_normalization
from trspose.data.coco import PersonInstance
from trspose.data.coco_checks import check_box, check_id, check_number, fail, require_object
from trspose.data.datasets import normalize_image
from trspose.data.transforms import TopDownTransform
from trspose.engine import build
from trspose.errors import DataError
from trspose.evaluation.inference import predict_crops
from trspose.io import os_reason, read_json, temporary_path, write_error

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
TRACK_MIN_KEYPOINTS = 4  # fewer confident keypoints than this: the next frame is taken whole
TRACK_MARGIN = 0.25  # the box of the confident keypoints grows by this fraction of its size on each side


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def read_frame_boxes(path: str | Path) -> dict[int, list[np.ndarray]]:
    """Person boxes per frame: ``{"FRAME": [[x, y, w, h(, score)], ...]}`` or a list of detections
    ``{"frame": i, "bbox": [x, y, w, h], "score": s}``, as (x, y, w, h, score) arrays. Every field is checked
    (``data.coco_checks``); errors name the entry."""
    path = Path(path)
    data = read_json(path, "per-frame boxes file")
    entries: list[tuple[str, object, object, object]] = []  # (where, frame, box, score)
    if isinstance(data, dict):
        for frame, boxes in data.items():
            if not isinstance(boxes, list):
                fail(path, f"frame {frame!r}", "must map to a list of [x, y, w, h(, score)] boxes")
            for k, box in enumerate(boxes):
                has_score = isinstance(box, list) and len(box) == 5
                entries.append((f"frame {frame!r} box {k}", frame, box[:4] if has_score else box,
                                box[4] if has_score else 1.0))  # fmt: skip
    elif isinstance(data, list):
        for k, det in enumerate(data):
            det = require_object(det, ("frame", "bbox"), path, f"detection {k}")
            entries.append((f"detection {k}", det["frame"], det["bbox"], det.get("score", 1.0)))
    else:
        fail(
            path, "the top level", "must be a JSON object {frame: [boxes]} or a list of {frame, bbox, score}"
        )
    by_frame: dict[int, list[np.ndarray]] = {}
    for where, frame, box, score in entries:
        index = check_id(_frame_number(frame), path, where, "frame")
        x, y, w, h = check_box(box, path, where)
        if w <= 0 or h <= 0:
            fail(path, where, f"bbox {box!r} is empty; width and height must be > 0")
        confidence = check_number(score, path, where, "score")
        by_frame.setdefault(index, []).append(np.array([x, y, w, h, confidence], dtype=np.float32))
    return by_frame


def _frame_number(frame: object) -> object:
    """A JSON object key such as "12" as the integer 12; anything else unchanged (check_id judges it)."""
    if isinstance(frame, str) and frame.isdecimal() and len(frame) < 19:
        return int(frame)
    return frame


def box_from_keypoints(
    keypoints: np.ndarray, scores: np.ndarray, frame_size: tuple[int, int], threshold: float
) -> np.ndarray | None:
    """The box (x, y, w, h) of the keypoints scored >= ``threshold``, enlarged by ``TRACK_MARGIN`` on each side and
    clipped to the frame (height, width); None with fewer than ``TRACK_MIN_KEYPOINTS`` of them."""
    confident = keypoints[scores >= threshold]
    if len(confident) < TRACK_MIN_KEYPOINTS:
        return None
    (x0, y0), (x1, y1) = confident.min(axis=0), confident.max(axis=0)
    pad_x, pad_y = TRACK_MARGIN * max(x1 - x0, 1.0), TRACK_MARGIN * max(y1 - y0, 1.0)
    height, width = frame_size
    x0, y0 = max(0.0, x0 - pad_x), max(0.0, y0 - pad_y)
    x1, y1 = min(width - 1.0, x1 + pad_x), min(height - 1.0, y1 + pad_y)
    if x1 <= x0 or y1 <= y0:
        return None
    return np.array([x0, y0, x1 - x0, y1 - y0], dtype=np.float32)


def csv_header(names: list[str]) -> list[list[str]]:
    """DeepLabCut's three header rows (scorer / bodyparts / coords), after two index columns frame and person."""
    return [
        ["scorer", "", *["trspose"] * (3 * len(names))],
        ["bodyparts", "", *[name for name in names for _ in range(3)]],
        ["coords", "person", *["x", "y", "likelihood"] * len(names)],
    ]


def csv_text(names: list[str], rows: list[list]) -> str:
    """The per-frame CSV: :func:`csv_header`, then one row per frame and person."""
    text = io.StringIO(newline="")
    table = csv.writer(text)
    table.writerows(csv_header(names))
    table.writerows(rows)
    return text.getvalue()


class SkeletonVideo:
    """The video of drawn skeletons, written to a temporary beside its final name and checked when closed.
    OpenCV's writer reports no errors (a full disk loses frames silently), so the finished file's frames are
    counted, and only a complete file takes the final name."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = path, fps
        self.temporary = temporary_path(path)
        self.writer: cv2.VideoWriter | None = None
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        if self.writer is None:
            height, width = frame.shape[:2]
            fourcc = cv2.VideoWriter_fourcc(*"mp4v")  # type: ignore[attr-defined]  # absent from OpenCV's stubs
            self.writer = cv2.VideoWriter(str(self.temporary), fourcc, self.fps, (width, height))
            if not self.writer.isOpened():
                raise write_error(self.path, "OpenCV cannot open a video writer for it")
        self.writer.write(frame)
        self.frames += 1

    def check(self) -> None:
        """Finish the file and count its frames; a short file is removed and is a ``WriteError``."""
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        reader = cv2.VideoCapture(str(self.temporary))
        written = int(reader.get(cv2.CAP_PROP_FRAME_COUNT)) if reader.isOpened() else 0
        if written <= 0 and reader.isOpened():  # a backend that does not know the count: decode them
            while reader.grab():
                written += 1
        reader.release()
        if written != self.frames:
            self.temporary.unlink(missing_ok=True)
            raise write_error(self.path, f"the finished file holds {written} of its {self.frames} frames")

    def close(self, keep: bool) -> None:
        """Give the checked file its name (``keep``), or remove it (after an error)."""
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        if not keep:
            self.temporary.unlink(missing_ok=True)
            return
        try:
            os.replace(self.temporary, self.path)
        except OSError as error:
            self.temporary.unlink(missing_ok=True)
            raise write_error(self.path, os_reason(error)) from None


def open_video(video: Path, every: int, max_frames: int) -> cv2.VideoCapture:
    """The opened video; a bad path, file or option is one ``DataError``."""
    if every < 1 or max_frames < 0:
        raise DataError(f"--every must be >= 1 and --max-frames >= 0, got {every} and {max_frames}")
    if not video.is_file():
        raise DataError(f"{video}: video not found; check the path")
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise DataError(f"{video}: OpenCV cannot open this video; re-encode it (e.g. H.264 in .mp4)")
    return capture


def sampled_frames(
    capture: cv2.VideoCapture, every: int, max_frames: int
) -> Iterator[tuple[int, np.ndarray]]:
    """(frame index, BGR frame) of every ``every``-th frame, at most ``max_frames`` of them (0: all)."""
    frame_index, yielded = -1, 0
    while not max_frames or yielded < max_frames:
        ok, frame = capture.read()
        if not ok:
            return
        frame_index += 1
        if frame_index % every == 0:
            yielded += 1
            yield frame_index, frame


class FramePredictor:
    """A model with its crops, flip test and decoding, predicting the people (boxes) of one frame at a time."""

    def __init__(self, checkpoint: str | Path) -> None:
        cfg, self.model = load_model(checkpoint)
        self.spec = build.keypoint_spec(cfg)
        self.codec = build.build_codec(cfg)
        self.transform = TopDownTransform(cfg.data.input_size, self.spec, None)
        self.normalization = pixel_normalization(cfg.model)
        self.flip_index = self.spec.flip_index() if cfg.eval.flip_test else None
        self.decode = cfg.eval.decode

    @torch.no_grad()
    def __call__(
        self, rgb: np.ndarray, boxes: list[np.ndarray], source: Path
    ) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints (P, K, 2) in frame pixels and scores (P, K) of the people in ``boxes`` ((x, y, w, h, score))."""
        crops, matrices = [], []
        for box in boxes:
            person = PersonInstance(image_id=0, ann_id=0, image_path=source, box=box[:4],
                                    keypoints=np.zeros((self.spec.num_keypoints, 3), np.float32))  # fmt: skip
            crop = self.transform(rgb, person, None)
            crops.append(normalize_image(crop.crop, self.normalization))
            matrices.append(crop.crop_to_image)
        return predict_crops(self.model, torch.stack(crops), np.stack(matrices), self.codec, self.flip_index,
                             self.decode)  # fmt: skip


def predict_video(
    checkpoint: str | Path,
    video: str | Path,
    *,
    out_dir: str | Path,
    boxes: str | Path | None = None,
    every: int = 1,
    max_frames: int = 0,
    score_threshold: float = 0.3,
) -> dict[str, Path]:
    """Predict every ``every``-th frame of ``video`` (at most ``max_frames`` of them, 0: all); returns the paths
    written (``predictions``, ``csv``, ``video``). Without per-frame ``boxes`` one person is followed: the first
    frame's box is the whole frame, every later one the box of the keypoints predicted in the frame before."""
    video = Path(video)
    capture = open_video(video, every, max_frames)
    frame_boxes = read_frame_boxes(boxes) if boxes else None
    predictor = FramePredictor(checkpoint)
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "predictions": out_dir / f"{video.stem}.predictions.json",
        "csv": out_dir / f"{video.stem}.csv",
        "video": out_dir / f"{video.stem}.skeletons.mp4",
    }
    skeletons = SkeletonVideo(paths["video"], fps / every)
    results: list[dict] = []
    rows: list[list] = []
    followed: np.ndarray | None = None  # the followed person's box, from the previous processed frame
    wanted = (total + every - 1) // every if total else None
    bar = tqdm(total=min(wanted, max_frames) if wanted and max_frames else (wanted or max_frames or None),
               desc=f"predict {video.name}", unit="frame")  # fmt: skip
    try:
        for frame_index, frame in sampled_frames(capture, every, max_frames):
            height, width = frame.shape[:2]
            if frame_boxes is not None:
                people = frame_boxes.get(frame_index, [])
            elif followed is not None:
                people = [np.append(followed, 1.0).astype(np.float32)]
            else:
                people = [np.array([0, 0, width, height, 1.0], dtype=np.float32)]  # the whole frame
            canvas = frame
            if people:
                keypoints, scores = predictor(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), people, video)
                for person, (box, points, score) in enumerate(zip(people, keypoints, scores)):
                    flat = np.concatenate([points, score[:, None]], axis=1)  # (K, 3)
                    results.append({
                        "image_id": frame_index, "frame": frame_index, "person": person, "category_id": 1,
                        "keypoints": [round(float(v), 3) for v in flat.ravel()],
                        "score": round(float(score.mean() * box[4]), 5),
                        "bbox": [round(float(v), 2) for v in box[:4]],
                    })  # fmt: skip
                    rows.append([frame_index, person, *[round(float(v), 3) for v in flat.ravel()]])
                    canvas = draw_pose(canvas, flat, predictor.spec, score_threshold=score_threshold)
                if frame_boxes is None:
                    followed = box_from_keypoints(keypoints[0], scores[0], (height, width), score_threshold)
            skeletons.write(canvas)
            bar.update(1)
    except BaseException:
        skeletons.close(keep=False)
        raise
    finally:
        bar.close()
        capture.release()
    if skeletons.frames == 0:
        raise DataError(f"{video}: no frames could be read; check that the file is a complete video")
    write_outputs(skeletons, results, rows, paths, list(predictor.spec.names))
    print(f"{video.name}: {skeletons.frames} frames, {len(results)} people -> "
          f"{', '.join(str(p) for p in paths.values())}")  # fmt: skip
    return paths


def write_outputs(skeletons: SkeletonVideo, results: list[dict], rows: list[list], paths: dict[str, Path],
                  names: list[str]) -> None:  # fmt: skip
    """The predictions JSON, the CSV and the checked video, each written to a temporary first and all three renamed
    only when all three are whole: a failed write leaves none of them, and any earlier outputs of the same name
    stay as they were."""
    skeletons.check()
    texts = {"predictions": json.dumps(results, indent=1) + "\n", "csv": csv_text(names, rows)}
    written: list[Path] = []
    try:
        for key, text in texts.items():
            temporary = temporary_path(paths[key])
            written.append(temporary)
            try:
                temporary.write_text(text, encoding="utf-8")
            except OSError as error:
                raise write_error(paths[key], os_reason(error)) from None
        for key in texts:
            os.replace(temporary_path(paths[key]), paths[key])
    except BaseException:
        for temporary in written:
            temporary.unlink(missing_ok=True)
        skeletons.close(keep=False)
        raise
    skeletons.close(keep=True)
