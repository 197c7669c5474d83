"""Reading person instances: COCO keypoint files, detector boxes, folders of images, image files.

Every problem with the user's files is a one-line :class:`DataError` naming the file and the fix.
Boxes are (x, y, w, h) in image pixels, clipped to the image; keypoints are (x, y, v) per joint.
Instances keep the order of the annotation file, because the literature's labelled subsets are
"the first N person instances in file order".
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from trspose.data.coco_checks import (
    PERSON_CATEGORY_ID,
    check_box,
    check_detections,
    check_keypoint_file,
    check_number,
    keypoint_category,
    require_object,
)
from trspose.data.keypoints import COCO17, DEFAULT_SIGMA, SPECS, KeypointSpec, spec_from_mapping
from trspose.errors import DataError
from trspose.io import read_json

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass
class PersonInstance:
    """One person to crop: an image, a box and (for labelled data) its keypoints."""

    image_id: int
    ann_id: int
    image_path: Path
    box: np.ndarray  # (4,) float32 x, y, w, h in image px
    keypoints: np.ndarray  # (K, 3) float32 x, y, v (v = 0: not labelled)
    box_score: float = 1.0  # detector confidence; 1 for ground-truth boxes
    area: float = 0.0  # COCO segment area (used by OKS); box area when unknown


def clip_box(box: Any, width: float, height: float) -> np.ndarray | None:
    """Clip an (x, y, w, h) box to the image; None when nothing of positive area is left."""
    x, y, w, h = (float(v) for v in box[:4])
    x1, y1 = max(0.0, x), max(0.0, y)
    x2, y2 = min(float(width), x + max(0.0, w)), min(float(height), y + max(0.0, h))
    if x2 <= x1 or y2 <= y1:
        return None
    return np.array([x1, y1, x2 - x1, y2 - y1], dtype=np.float32)


def read_keypoint_file(ann_file: Path | str, spec: KeypointSpec, category: str = "") -> dict:
    """A COCO keypoints file, read and checked whole (``coco_checks.check_keypoint_file``): the annotations of
    its keypoint category (``category`` by name where it has several), completed and normalised, with the images
    and that category."""
    path = Path(ann_file)
    data = read_json(path, "annotation file")
    return check_keypoint_file(data, path, spec.num_keypoints, spec.names, category)


def file_layout(ann_file: Path | str, category: str = "") -> KeypointSpec | None:
    """The keypoint layout a COCO file's category lists (its ``keypoints`` names and ``skeleton``): the preset with
    those names where there is one, else those names with left/right pairs inferred and the default OKS sigma; None
    where the category lists no names (``data.keypoints: auto``, drawings and statistics then take COCO-17)."""
    path = Path(ann_file)
    stat = path.stat()
    return _file_layout(str(path), stat.st_mtime_ns, stat.st_size, category)


@functools.lru_cache(maxsize=8)
def _file_layout(file: str, mtime_ns: int, size: int, category: str) -> KeypointSpec | None:
    """file_layout's work, once per version of a file (COCO's train2017 file is 240 MB of JSON)."""
    path = Path(file)
    data = read_json(path, "annotation file")
    require_object(data, ("categories",), path, "the top level")
    chosen = keypoint_category(
        data["categories"] if isinstance(data["categories"], list) else [], path, category
    )
    names = chosen.get("keypoints")
    if not (isinstance(names, list) and names):
        return None
    preset = next((spec for spec in SPECS.values() if list(spec.names) == names), None)
    if preset is not None:
        return preset
    skeleton = chosen.get("skeleton") or []
    count = len(names) if isinstance(names, list) else 0
    for position, pair in enumerate(skeleton if isinstance(skeleton, list) else [skeleton]):
        if not (isinstance(pair, list) and len(pair) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= count for v in pair)):  # fmt: skip
            raise DataError(f"{path}: the keypoint category's skeleton[{position}] is {pair!r}; a COCO skeleton "
                            f"pairs keypoint numbers from 1 to {count}")  # fmt: skip
    skeleton = [[a - 1, b - 1] for a, b in skeleton]  # COCO files count from 1
    mapping = {"names": names, "skeleton": skeleton, "sigmas": [DEFAULT_SIGMA] * len(names or [])}
    return spec_from_mapping(mapping, f"{path} (categories)")


def load_coco_instances(
    ann_file: Path | str,
    image_root: Path | str,
    spec: KeypointSpec,
    *,
    boxes_file: Path | str | None = None,
    require_keypoints: bool = True,
    min_box_score: float = 0.0,
    category: str = "",
) -> list[PersonInstance]:
    """Person instances from a COCO person-keypoints file, in annotation-file order.

    The whole file (and ``boxes_file``) is checked first, and every image an instance needs must exist and be
    non-empty, so bad input stops here rather than deep inside training or evaluation. Skipped, as COCO
    training does: crowd annotations (``iscrowd=1``), annotations without labelled keypoints (when
    ``require_keypoints``), and boxes with no area left after clipping to the image; the skip counts are
    logged. With ``boxes_file`` (COCO detection results), the detector's boxes scoring at least
    ``min_box_score`` replace the ground truth and keypoints are all zero.
    """
    ann_path, image_root = Path(ann_file), Path(image_root)
    data = read_keypoint_file(ann_path, spec, category)
    images = {image["id"]: image for image in data["images"]}
    if not image_root.is_dir():
        raise DataError(
            f"{image_root}: image folder not found; pass the folder that holds {ann_path.name}'s images"
        )
    if boxes_file is not None:
        source_id = int(data["categories"][0]["source_id"])  # detections name the file's own category id
        instances = _instances_from_detections(
            Path(boxes_file), images, image_root, spec, min_box_score, source_id
        )
    else:
        instances = _instances_from_annotations(data, images, image_root, spec, require_keypoints, ann_path)
    if not instances:
        source = boxes_file if boxes_file is not None else ann_path
        raise DataError(
            f"{source}: no usable person instances; check that it is a COCO person-keypoints file "
            "(or detection results for the same images) and the filters (min_box_score, require_keypoints)"
        )
    _check_image_files(instances, image_root, ann_path)
    return instances


def _check_image_files(instances: list[PersonInstance], image_root: Path, ann_path: Path) -> None:
    """Every image an instance needs exists and is not empty (a stat per image: cheap next to training)."""
    for image_path in dict.fromkeys(inst.image_path for inst in instances):
        try:
            size = image_path.stat().st_size if image_path.is_file() else None
        except (OSError, ValueError):
            size = None
        if size is None:
            raise DataError(
                f"{image_path}: image not found; check that image_root ({image_root}) matches {ann_path.name}"
            )
        if size == 0:
            raise DataError(f"{image_path}: empty image file (0 bytes); re-download or re-encode the image")


def _instances_from_annotations(
    data: dict,
    images: dict[int, dict],
    image_root: Path,
    spec: KeypointSpec,
    require_keypoints: bool,
    path: Path,
) -> list[PersonInstance]:
    instances: list[PersonInstance] = []
    skipped = {"crowd": 0, "no keypoints": 0, "empty box": 0}
    for ann in data["annotations"]:  # checked: person annotations with every field present
        if ann["iscrowd"]:
            skipped["crowd"] += 1
            continue
        if require_keypoints and ann["num_keypoints"] == 0:
            skipped["no keypoints"] += 1
            continue
        image = images[ann["image_id"]]
        box = clip_box(ann["bbox"], image["width"], image["height"])
        if box is None:
            skipped["empty box"] += 1
            continue
        keypoints = np.asarray(ann["keypoints"], dtype=np.float32).reshape(spec.num_keypoints, 3)
        instances.append(
            PersonInstance(
                image["id"], ann["id"], image_root / image["file_name"], box, keypoints, 1.0, ann["area"]
            )
        )
    if skipped["empty box"]:
        logger.warning(
            "%s: skipped %d annotations whose box is empty inside the image", path, skipped["empty box"]
        )
    logger.info("%s: kept %d person instances, skipped %s", path, len(instances), skipped)
    return instances


def _instances_from_detections(
    path: Path,
    images: dict[int, dict],
    image_root: Path,
    spec: KeypointSpec,
    min_box_score: float,
    category: int = PERSON_CATEGORY_ID,
) -> list[PersonInstance]:
    detections = check_detections(read_json(path, "boxes file"), path, set(images), category)
    instances: list[PersonInstance] = []
    empty = 0
    for position, det in enumerate(detections):
        if det["category_id"] != category or det["score"] < min_box_score:
            continue
        image = images[det["image_id"]]
        box = clip_box(det["bbox"], image["width"], image["height"])
        if box is None:
            empty += 1
            continue
        keypoints = np.zeros((spec.num_keypoints, 3), dtype=np.float32)
        instances.append(
            PersonInstance(
                image["id"], position + 1, image_root / image["file_name"], box, keypoints, det["score"],
                float(box[2] * box[3]),
            )
        )  # fmt: skip
    if empty:
        logger.warning("%s: skipped %d detections with empty boxes", path, empty)
    return instances


def _check_image_bytes(data: bytes, path: Path) -> None:
    """Reject truncated JPEG/PNG files, which some decoders silently fill with grey."""
    tail = data[-64:].rstrip(b"\x00\r\n ")
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in tail:
        raise DataError(
            f"{path}: truncated JPEG (no end-of-image marker); re-download or re-encode the image"
        )
    if data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in tail:
        raise DataError(f"{path}: truncated PNG (no IEND chunk); re-download or re-encode the image")


def load_image(path: Path | str) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB; a missing, corrupt or truncated file is a DataError."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: image not found; check the image folder") from None
    except OSError as error:
        raise DataError(
            f"{path}: cannot read image ({error.strerror}); check the file and its permissions"
        ) from None
    if not data:
        raise DataError(f"{path}: empty image file (0 bytes); re-download or re-encode the image")
    _check_image_bytes(data, path)
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:  # OpenCV raises for some malformed headers instead of returning None
        image = None
    if image is None or image.size == 0:
        raise DataError(
            f"{path}: not a readable image (corrupt or unsupported format); re-encode it as JPEG or PNG"
        )
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)  # (H, W, 3) uint8 RGB


EXIF_TRANSPOSED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) of an image file as :func:`load_image` will decode it, reading only its header when
    Pillow is available. OpenCV turns JPEGs upright by their EXIF orientation, so a phone photo stored
    sideways has its header's width and height swapped."""
    try:
        from PIL import Image

        with Image.open(path) as image:
            width, height = image.size
            if image.format == "JPEG" and image.getexif().get(0x0112) in EXIF_TRANSPOSED:
                width, height = height, width
        return int(height), int(width)
    except ImportError:  # pragma: no cover - Pillow ships with torchvision
        return load_image(path).shape[:2]
    except Exception:  # Pillow raises OSError, but also ValueError, DecompressionBombError, ... on bad files
        raise DataError(f"{path}: not a readable image; re-encode it as JPEG or PNG or remove it") from None


def _read_folder_boxes(boxes_json: Path, names: set[str]) -> dict[str, list[tuple[list[float], float]]]:
    """Boxes per file name from ``{name: [[x,y,w,h(,score)], ...]}`` or a detection list with file names.

    The file may name more images than were given (a dataset-wide detections file used on some of its
    images); those are checked but not used. A file that names none of the given images is an error.
    """
    data = read_json(boxes_json, "boxes file")
    boxes: dict[str, list[tuple[list[float], float]]] = {}
    if isinstance(data, dict):
        for name, entries in data.items():
            if not isinstance(entries, list) or any(
                not isinstance(e, list) or len(e) not in (4, 5) for e in entries
            ):
                raise DataError(
                    f"{boxes_json}: boxes for {name!r} must be a list of [x, y, w, h] or [x, y, w, h, score]"
                )
            boxes[name] = [
                _box_and_score(e[:4], e[4] if len(e) == 5 else 1.0, boxes_json, repr(name)) for e in entries
            ]
    elif isinstance(data, list):
        for position, det in enumerate(data):
            where = f"entry {position}"
            require_object(det, ("file_name", "bbox"), boxes_json, where)
            if not isinstance(det["file_name"], str):
                raise DataError(f"{boxes_json}: {where}: file_name must be a string (the image's file name)")
            boxes.setdefault(det["file_name"], []).append(
                _box_and_score(det["bbox"], det.get("score", 1.0), boxes_json, where)
            )
    else:
        raise DataError(f"{boxes_json}: expected {{file_name: [[x, y, w, h], ...]}} or a list of detections")
    if boxes and not set(boxes) & names:
        raise DataError(
            f"{boxes_json}: names none of the input images (it names image {sorted(boxes)[0]!r}, ...); "
            "fix the file names or pass the images it was made for"
        )
    return {name: entries for name, entries in boxes.items() if name in names}


def _box_and_score(box: Any, score: Any, boxes_json: Path, where: str) -> tuple[list[float], float]:
    """([x, y, w, h], score) as checked floats, or a DataError naming the file, the entry and the field."""
    try:
        score = check_number(score, boxes_json, where, "score")
    except DataError as error:
        raise DataError(f"{error}; a box is [x, y, w, h] with an optional numeric score") from None
    return check_box(box, boxes_json, where), score


def list_images(inputs: Path | str | Sequence[Path | str]) -> list[Path]:
    """Image files from image paths and/or folders (each folder's .jpg/.png files, sorted by name)."""
    items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    paths: list[Path] = []
    for item in map(Path, items):
        if item.is_dir():
            paths += sorted(p for p in item.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.is_file():
            if item.suffix.lower() not in IMAGE_SUFFIXES:
                raise DataError(f"{item}: not a .jpg or .png image; pass image files or folders holding them")
            paths.append(item)
        else:
            raise DataError(f"{item}: no such image or folder; check the path")
    if not paths:
        raise DataError(
            f"{items[0] if len(items) == 1 else items}: no .jpg or .png images found; pass image files or folders"
        )
    names = [p.name for p in paths]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise DataError(
            f"{duplicate}: two input images share this file name; rename one or predict them separately"
        )
    return paths


def load_image_folder_with_boxes(
    inputs: Path | str | Sequence[Path | str],
    boxes_json: Path | str | None = None,
    *,
    spec: KeypointSpec = COCO17,
    min_box_score: float = 0.0,
) -> tuple[list[PersonInstance], dict[int, str]]:
    """Instances for images given as files and/or folders, for ``predict`` and unlabelled training.

    Returns the instances and ``file_names`` (image_id -> file name, the key used in ``boxes_json``).
    Images are taken in input order (folders sorted by name); ``image_id`` is the 1-based position in
    that order and ``ann_id`` counts instances from 1, so ids are reproducible. Without
    ``boxes_json`` each image is one person filling the whole image; with it (``{file_name: [[x, y,
    w, h(, score)], ...]}`` or a detection list with ``file_name``), images without boxes are skipped.
    """
    paths = list_images(inputs)
    boxes = _read_folder_boxes(Path(boxes_json), {p.name for p in paths}) if boxes_json else None
    instances: list[PersonInstance] = []
    file_names: dict[int, str] = {}
    for image_id, path in enumerate(paths, start=1):
        file_names[image_id] = path.name
        height, width = image_size(path)
        entries = (
            [([0.0, 0.0, float(width), float(height)], 1.0)] if boxes is None else boxes.get(path.name, [])
        )
        for box_values, score in entries:
            box = clip_box(box_values, width, height)
            if box is None or score < min_box_score:
                continue
            keypoints = np.zeros((spec.num_keypoints, 3), dtype=np.float32)
            ann_id = len(instances) + 1
            instances.append(
                PersonInstance(image_id, ann_id, path, box, keypoints, score, float(box[2] * box[3]))
            )
    if not instances:
        raise DataError(f"{boxes_json}: no boxes left for the input images; check the file and min_box_score")
    return instances, file_names
