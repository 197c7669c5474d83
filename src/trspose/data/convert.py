"""``trspose convert``: other annotation layouts turned into the COCO keypoints files the toolkit reads.

Labelling tools' files (DeepLabCut, SLEAP, Label Studio) become a whole dataset folder (``data/label_tools.py``);
the pose datasets' annotation files below become one COCO keypoints file, in MPII's and AI Challenger's published
JSON forms (as MMPose distributes and reads them):

- MPII (``mpii_train.json`` / ``mpii_val.json``): a list of people, ``{"image", "joints": [[x, y] x 16],
  "joints_vis": [0/1 x 16], "center": [x, y], "scale": s}`` in MATLAB's 1-based pixels, with the person's height
  about ``200 s`` pixels. As HRNet and MMPose read it: joints and centre move by -1 px, the centre 15 s px down;
  the box is the square of side 200 s around it; unlabelled joints (``joints_vis`` 0) get flag 0.
- AI Challenger (``keypoint_train_annotations_*.json``): a list of images, ``{"image_id", "keypoint_annotations":
  {"human1": [x, y, v] x 14}, "human_annotations": {"human1": [x1, y1, x2, y2]}}``, with ``v`` 1 visible,
  2 occluded, 3 not labelled (COCO flags 2, 1, 0); the image file is ``<image_id>.jpg``.

Image sizes, which the COCO file records, are read from the images' headers.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from trspose.data.coco_checks import fail
from trspose.data.keypoints import AIC14, MPII16, KeypointSpec
from trspose.data.label_tools import (
    TOOL_FORMATS,
    convert_tool_labels,
    detect_tool_format,
    json_is_label_studio,
)
from trspose.errors import DataError
from trspose.io import read_json, write_json

FORMATS = ("mpii", "aic")
ALL_FORMATS = (*FORMATS, *TOOL_FORMATS)
AIC_FLAGS = {1: 2, 2: 1, 3: 0}  # AI Challenger's visibility -> COCO's


def detect_format(data: Any, path: Path) -> str:
    """'mpii' or 'aic' from the first entry's keys; a one-line error for anything else."""
    first = data[0] if isinstance(data, list) and data else None
    if isinstance(first, dict) and "joints" in first and "joints_vis" in first:
        return "mpii"
    if isinstance(first, dict) and "keypoint_annotations" in first:
        return "aic"
    fail(path, "the top level", "is neither MPII's JSON (a list of {image, joints, joints_vis, center, scale}) "
         "nor AI Challenger's (a list of {image_id, keypoint_annotations, human_annotations}); give --format")  # fmt: skip
    raise AssertionError  # fail() raised


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
    except FileNotFoundError:
        raise DataError(
            f"{path}: image not found; pass the folder of the annotation file's images (--images)"
        ) from None
    except (OSError, UnidentifiedImageError) as error:
        raise DataError(f"{path}: not a readable image ({error})") from None
    return int(height), int(width)


def _number(value: Any, path: Path, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        fail(path, where, f"must be a finite number, got {value!r}")
    return float(value)


def _mpii_people(data: list, path: Path) -> list[tuple[str, list[float], list[float]]]:
    people = []
    for position, entry in enumerate(data):
        where = f"entry {position}"
        if not isinstance(entry, dict) or not {"image", "joints", "joints_vis", "center", "scale"} <= set(
            entry
        ):
            fail(path, where, "must have image, joints, joints_vis, center and scale")
        joints, visible = entry["joints"], entry["joints_vis"]
        if not (
            isinstance(joints, list)
            and len(joints) == 16
            and isinstance(visible, list)
            and len(visible) == 16
        ):
            fail(path, where, "joints and joints_vis must list the 16 MPII joints")
        keypoints = []
        for k, (point, flag) in enumerate(zip(joints, visible)):
            if not (isinstance(point, list) and len(point) == 2):
                fail(path, where, f"joints[{k}] must be [x, y]")
            labelled = _number(flag, path, f"{where} joints_vis[{k}]") > 0
            x, y = (_number(v, path, f"{where} joints[{k}]") - 1.0 for v in point)  # 1-based -> 0-based
            keypoints += [x, y, 2.0] if labelled else [0.0, 0.0, 0.0]
        center = entry["center"]
        if not (isinstance(center, list) and len(center) == 2):
            fail(path, where, f"center must be [x, y], got {center!r}")
        scale = _number(entry["scale"], path, f"{where} scale")
        if scale <= 0:
            fail(path, where, f"scale must be > 0, got {scale}")
        cx, cy = (_number(v, path, f"{where} center") - 1.0 for v in center)
        cy += 15.0 * scale  # MPII's centres sit high on the body
        side = 200.0 * scale
        people.append((str(entry["image"]), keypoints, [cx - side / 2, cy - side / 2, side, side]))
    return people


def _aic_people(data: list, path: Path) -> list[tuple[str, list[float], list[float]]]:
    people = []
    for position, entry in enumerate(data):
        where = f"entry {position}"
        if not isinstance(entry, dict) or not {
            "image_id",
            "keypoint_annotations",
            "human_annotations",
        } <= set(entry):
            fail(path, where, "must have image_id, keypoint_annotations and human_annotations")
        keypoint_annotations, human_annotations = entry["keypoint_annotations"], entry["human_annotations"]
        if not (isinstance(keypoint_annotations, dict) and isinstance(human_annotations, dict)):
            fail(path, where, "keypoint_annotations and human_annotations must map each human to its values")
        for human, values in keypoint_annotations.items():
            box = human_annotations.get(human)
            if not (isinstance(values, list) and len(values) == 42) or not (
                isinstance(box, list) and len(box) == 4
            ):
                fail(path, f"{where} {human}", "needs 14 keypoints x 3 values and a box [x1, y1, x2, y2]")
            keypoints = []
            for k in range(14):
                x, y, flag = (_number(v, path, f"{where} {human}") for v in values[3 * k : 3 * k + 3])
                if flag not in AIC_FLAGS:
                    fail(path, f"{where} {human}", f"keypoint {k}'s visibility must be 1, 2 or 3, got {flag}")
                coco_flag = AIC_FLAGS[int(flag)]
                keypoints += [x, y, float(coco_flag)] if coco_flag else [0.0, 0.0, 0.0]
            x1, y1, x2, y2 = (_number(v, path, f"{where} {human} box") for v in box)
            people.append((f"{entry['image_id']}.jpg", keypoints, [x1, y1, x2 - x1, y2 - y1]))
    return people


def convert_annotations(source: Path | str, images: Path | str, out: Path | str, fmt: str = "auto") -> Path:
    """Write ``out``, a COCO keypoints file of ``source`` (MPII or AI Challenger JSON, ``fmt`` or detected) whose
    images are in ``images``; its category is the ``mpii16`` or ``aic14`` preset's. Returns ``out``."""
    source, images, out = Path(source), Path(images), Path(out)
    data = read_json(source, "annotation file")
    fmt = detect_format(data, source) if fmt == "auto" else fmt
    if fmt not in FORMATS:
        raise DataError(f"--format {fmt!r} is not one of auto, {', '.join(FORMATS)}")
    people = _mpii_people(data, source) if fmt == "mpii" else _aic_people(data, source)
    spec: KeypointSpec = MPII16 if fmt == "mpii" else AIC14
    image_ids: dict[str, int] = {}
    coco_images: list[dict] = []
    annotations: list[dict] = []
    for file_name, keypoints, box in people:
        if file_name not in image_ids:
            image_ids[file_name] = len(image_ids) + 1
            height, width = _image_size(images / file_name)
            coco_images.append(
                {"id": image_ids[file_name], "file_name": file_name, "width": width, "height": height}
            )
        labelled = sum(1 for v in keypoints[2::3] if v > 0)
        annotations.append({
            "id": len(annotations) + 1, "image_id": image_ids[file_name], "category_id": 1, "iscrowd": 0,
            "bbox": [round(v, 2) for v in box], "area": round(box[2] * box[3], 2), "num_keypoints": labelled,
            "keypoints": [round(v, 2) for v in keypoints],
        })  # fmt: skip
    category = {**spec.coco_category(), "name": "person"}
    write_json(
        {"images": coco_images, "annotations": annotations, "categories": [category]}, out, indent=None
    )
    print(f"wrote {out}: {len(annotations)} people in {len(coco_images)} images ({fmt}; data.keypoints="
          f"{'mpii16' if fmt == 'mpii' else 'aic14'})")  # fmt: skip
    return out


def convert(
    source: Path | str,
    out: Path | str,
    fmt: str = "auto",
    images: Path | str | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    unlabeled_frames: int = 0,
) -> Path:
    """``trspose convert``: a labelling tool's file (``dlc``, ``sleap``, ``labelstudio``) into the dataset folder
    ``out``, or MPII's / AI Challenger's JSON into the COCO file ``out`` (``images`` is then their image folder)."""
    source = Path(source)
    if fmt == "auto":
        fmt = detect_tool_format(source) or ("labelstudio" if json_is_label_studio(source) else "auto")
    if fmt in TOOL_FORMATS:
        return convert_tool_labels(source, out, fmt, images, val_fraction, seed, unlabeled_frames)
    if fmt not in ("auto", *FORMATS):
        raise DataError(f"--format {fmt!r} is not one of auto, {', '.join(ALL_FORMATS)}")
    if images is None:
        raise DataError(f"{source}: MPII's and AI Challenger's annotation files need --images, the folder of their "
                        "images (their sizes go into the COCO file)")  # fmt: skip
    return convert_annotations(source, images, out, fmt)
