"""Field-by-field checks of the COCO files a user gives: keypoint annotations and detection boxes.

``json.load`` accepts NaN and Infinity, strings where numbers belong and ids that repeat, and pycocotools
trusts all of it: a NaN OKS counts as a match, a ground-truth annotation with id 0 is never matched (its
matches are stored as ids and tested for truth), a repeated id silently replaces the first annotation, and
``num_keypoints > 0`` on a person whose keypoints are all unlabelled makes COCOeval fall back to a box test.
So every reader checks the whole file up front and stops at the first problem with a one-line
:class:`DataError` naming the file, the entry (annotation id, image id or position) and the field.

The checked data comes back normalised (ints and floats, optional fields filled in), ready for the readers
and for pycocotools: a complete, consistent file comes back with the same values.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from trspose.errors import DataError

logger = logging.getLogger(__name__)

PERSON_CATEGORY_ID = 1  # COCO's; results are written for it
PERSON_CATEGORY_JSON = '[{"id": 1, "name": "person", "keypoints": [...], "skeleton": [...]}]'
MAX_COORDINATE = 1e6  # px: bounds every coordinate and size, so float32 and OpenCV drawing never overflow
MAX_ID = 2**63 - 1  # ids travel through int64 arrays
VISIBILITY_FLAGS = (0, 1, 2)  # not labelled, labelled but occluded, labelled and visible
FAR_OUTSIDE_BOX = 3.0  # box sizes: a labelled keypoint further outside its box draws a warning (occluded
# keypoints of the synthetic people, boxed by their visible silhouette, reach 1.8; a box in other units 100s)


def fail(path: Path, where: str, message: str) -> NoReturn:
    """Raise the one-line DataError every check ends in: ``FILE: ENTRY: what is wrong; how to fix it``."""
    raise DataError(f"{path}: {where}: {message}")


def require_object(entry: Any, keys: tuple[str, ...], path: Path, where: str) -> dict:
    """``entry`` as a dict holding ``keys``, or a DataError naming the missing ones."""
    if not isinstance(entry, dict):
        fail(path, where, f"is {_describe(entry)}, not a JSON object; expected a COCO-format file")
    missing = [key for key in keys if key not in entry]
    if missing:
        fail(path, where, f"lacks key(s) {', '.join(missing)}; expected a COCO-format file")
    return entry


def check_id(value: Any, path: Path, where: str, field: str, minimum: int = 0) -> int:
    """An integer id in [minimum, 2**63 - 1] (an integral float such as 3.0 is accepted as 3)."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if type(value) is not int or not minimum <= value <= MAX_ID:
        fail(path, where, f"{field} is {_describe(value)}; it must be an integer from {minimum} to 2**63-1")
    return value


def check_number(
    value: Any, path: Path, where: str, field: str, *, minimum: float = -math.inf, maximum: float = math.inf
) -> float:
    """A finite number (not a string, not a boolean) in [minimum, maximum], as a float."""
    if type(value) not in (int, float):
        fail(path, where, f"{field} is {_describe(value)}; it must be a number")
    number = _as_float(value)
    if not math.isfinite(number):
        fail(
            path,
            where,
            f"{field} is {_describe(value)}; every number must be finite: fix or remove the entry",
        )
    if not minimum <= number <= maximum:
        fail(path, where, f"{field} is {_describe(value)}; it must lie in [{minimum:g}, {maximum:g}]")
    return number


def check_numbers(values: Any, count: int, path: Path, where: str, field: str, hint: str = "") -> np.ndarray:
    """A list of ``count`` finite numbers within +-MAX_COORDINATE, as a float64 array; ``hint`` ends the message
    of a list of the wrong length."""
    if not isinstance(values, list) or len(values) != count:
        got = f"a list of {len(values)} values" if isinstance(values, list) else _describe(values)
        fail(path, where, f"{field} must be {count} numbers, got {got}{hint}")
    if not {type(v) for v in values} <= {int, float}:  # bool, str, None, list, dict
        index = next(i for i, v in enumerate(values) if type(v) not in (int, float))
        fail(path, where, f"{field}[{index}] is {_describe(values[index])}; it must be a number")
    try:
        array = np.array(values, dtype=np.float64)
    except OverflowError:  # an integer beyond float range
        array = np.array([_as_float(v) for v in values], dtype=np.float64)
    bad = ~np.isfinite(array) | (np.abs(array) > MAX_COORDINATE)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        kind = "finite" if not np.isfinite(array[index]) else f"within +-{MAX_COORDINATE:g} px"
        message = f"{field}[{index}] is {_describe(values[index])}; every number must be {kind}"
        fail(path, where, f"{message}: fix or remove the entry")
    return array


def check_box(values: Any, path: Path, where: str, field: str = "bbox") -> list[float]:
    """An [x, y, width, height] box of finite numbers with width, height >= 0."""
    try:
        box = check_numbers(values, 4, path, where, field)
    except DataError as error:
        raise DataError(f"{error}; a box is [x, y, w, h] in pixels") from None
    if box[2] < 0 or box[3] < 0:
        fail(
            path, where, f"{field} {values!r} has a negative width or height; boxes are [x, y, width, height]"
        )
    return box.tolist()


def check_keypoint_file(
    data: Any, path: Path, num_keypoints: int, names: tuple[str, ...] | None = None, category: str = ""
) -> dict:
    """A COCO person-keypoints file, checked whole; returns ``{"images", "annotations", "categories"}`` with the
    person annotations only, each completed when a field is absent (``iscrowd`` 0, ``area`` the box's area
    inside the image, ``num_keypoints`` the count of labelled keypoints) and normalised. With ``names`` (the
    layout a run or a model uses), a category that lists other keypoint names is refused, naming both."""
    require_object(data, ("images", "annotations"), path, "the top level")
    if "categories" not in data:
        fail(path, "the top level", "lacks 'categories'; a COCO person-keypoints file lists "
             f"{PERSON_CATEGORY_JSON} there (pycocotools needs it to score)")  # fmt: skip
    for key in ("images", "annotations", "categories"):
        if not isinstance(data[key], list):
            fail(path, "the top level", f"'{key}' is {_describe(data[key])}; it must be a list")
    chosen = keypoint_category(data["categories"], path, category)
    categories = [chosen]
    listed = categories[0].get("keypoints")
    if names is not None and isinstance(listed, list) and [str(n) for n in listed] != list(names):
        fail(path, "categories", f"lists the keypoints of another layout ({_shown(listed)}) than the run or model's "
             f"({_shown(list(names))}); use annotations of the layout it was trained on, or set data.keypoints to "
             "this file's layout")  # fmt: skip
    images = _check_images(data["images"], path)
    annotations: list = []
    seen: dict[int, int] = {}
    counts: dict[str, list] = {"num_keypoints": [], "far outside": []}
    for position, ann in enumerate(data["annotations"]):
        checked = _check_annotation(
            ann, position, path, images, num_keypoints, seen, counts, chosen["source_id"]
        )
        if checked is not None:
            annotations.append(checked)
    _warn(counts, path)
    return {"images": list(images.values()), "annotations": annotations, "categories": categories}


def check_detections(
    data: Any, path: Path, image_ids: set[int], default_category: int = PERSON_CATEGORY_ID
) -> list[dict]:
    """COCO detection results ``[{image_id, category_id, bbox, score}, ...]``, checked entry by entry; returns
    ``{image_id, category_id, bbox, score}`` per entry, in file order."""
    if not isinstance(data, list):
        fail(path, "the top level", f"is {_describe(data)}; expected a COCO detection-results list "
             "[{image_id, category_id, bbox, score}, ...]")  # fmt: skip
    checked = []
    for position, det in enumerate(data):
        where = f"entry {position}"
        require_object(det, ("image_id", "bbox", "score"), path, where)
        image_id = check_id(det["image_id"], path, where, "image_id")
        if image_id not in image_ids:
            fail(path, where, f"image_id {image_id} is not in the annotation file; use detection results "
                 "for the same split")  # fmt: skip
        category = check_id(det.get("category_id", default_category), path, where, "category_id")
        box = check_box(det["bbox"], path, where)
        score = check_number(det["score"], path, where, "score")
        checked.append({"image_id": image_id, "category_id": category, "bbox": box, "score": score})
    return checked


def _shown(keypoints: list) -> str:
    """``17: nose, left_eye, right_eye, left_ear, ...``"""
    return f"{len(keypoints)}: {', '.join(map(str, keypoints[:4]))}{', ...' if len(keypoints) > 4 else ''}"


def keypoint_category(categories: list, path: Path, wanted: str = "") -> dict:
    """The keypoint category a file's annotations are read for, any name and id: the one named ``wanted``
    (``data.category``), else the only category that lists keypoint names, else the one named person. Returned
    with ``source_id`` (its id in the file) and the id trspose reads and writes it as (``PERSON_CATEGORY_ID``)."""
    valid = [(position, c) for position, c in enumerate(categories) if isinstance(c, dict)]
    names = ", ".join(repr(c.get("name")) for _, c in valid) or "none"
    if wanted:
        found = [(position, c) for position, c in valid if c.get("name") == wanted]
        if not found:
            fail(path, "categories", f"has no category named {wanted!r} (data.category); it has {names}")
    else:
        found = [(position, c) for position, c in valid if isinstance(c.get("keypoints"), list)]
        if len(found) > 1:
            fail(path, "categories", f"lists {len(found)} keypoint categories ({names}); choose one with "
                 "data.category=NAME")  # fmt: skip
        found = found or [(position, c) for position, c in valid if c.get("name") == "person"]
        if not found:
            fail(path, "categories", "lists no keypoint category; a COCO keypoints file has one like "
                 f"{PERSON_CATEGORY_JSON}")  # fmt: skip
    position, chosen = found[0]
    source_id = check_id(chosen.get("id"), path, f"categories[{position}]", "id")
    return {**chosen, "id": PERSON_CATEGORY_ID, "source_id": source_id}


def _check_images(entries: list, path: Path) -> dict[int, dict]:
    images: dict[int, dict] = {}
    for position, image in enumerate(entries):
        where = f"images[{position}]"
        require_object(image, ("id", "file_name", "width", "height"), path, where)
        image_id = check_id(image["id"], path, where, "id")
        where = f"image id {image_id}"
        if image_id in images:
            fail(path, where, "appears twice in 'images'; image ids must be unique")
        name = image["file_name"]
        if not isinstance(name, str) or not name.strip() or "\x00" in name:
            fail(path, where, f"file_name is {_describe(name)}; it must be the image's file name")
        size = {
            key: check_number(image[key], path, where, key, minimum=1, maximum=MAX_COORDINATE)
            for key in ("width", "height")
        }
        images[image_id] = {**image, "id": image_id, **size}
    return images


def _check_annotation(
    ann: Any,
    position: int,
    path: Path,
    images: dict,
    num_keypoints: int,
    seen: dict,
    counts: dict,
    source_id: int,
) -> dict | None:
    """One annotation checked and completed; None for another category's annotation (skipped)."""
    require_object(ann, ("id", "image_id", "bbox", "keypoints"), path, f"annotations[{position}]")
    ann_id = check_id(ann["id"], path, f"annotations[{position}]", "id", minimum=1)
    where = f"annotation id {ann_id}"
    if ann_id in seen:
        fail(path, where, f"appears twice (annotations[{seen[ann_id]}] and [{position}]); ids must be unique")
    seen[ann_id] = position
    category = check_id(ann.get("category_id", source_id), path, where, "category_id")
    if category != source_id:
        return None
    category = PERSON_CATEGORY_ID  # read and written as one category, whatever its id in the file
    image_id = check_id(ann["image_id"], path, where, "image_id")
    if image_id not in images:
        fail(path, where, f"refers to image_id {image_id}, which is not in 'images'")
    box = check_box(ann["bbox"], path, where)
    hint = f" ({num_keypoints} keypoints x 3); use the keypoint spec that matches this file"
    keypoints = check_numbers(ann["keypoints"], 3 * num_keypoints, path, where, "keypoints", hint)
    keypoints = keypoints.reshape(num_keypoints, 3)
    flags = keypoints[:, 2]
    if not np.isin(flags, VISIBILITY_FLAGS).all():
        k = int(np.flatnonzero(~np.isin(flags, VISIBILITY_FLAGS))[0])
        fail(path, where, f"keypoints[{3 * k + 2}] (keypoint {k}'s flag) is {flags[k]:g}; flags are 0 (not "
             "labelled), 1 (labelled, occluded) or 2 (labelled, visible)")  # fmt: skip
    crowd = ann.get("iscrowd", 0)
    if crowd not in (0, 1) or type(crowd) not in (int, bool, float):
        fail(path, where, f"iscrowd is {_describe(crowd)}; it must be 0 or 1")
    labeled = int((flags > 0).sum())
    count = _check_num_keypoints(ann, labeled, num_keypoints, path, where, counts)
    area = ann.get("area", _clipped_area(box, images[image_id]))
    area = check_number(area, path, where, "area", minimum=0, maximum=MAX_COORDINATE**2)
    if labeled and not crowd and _far_outside(keypoints, box):
        counts["far outside"].append(ann_id)
    return {**ann, "id": ann_id, "image_id": image_id, "category_id": category, "bbox": box,
            "keypoints": keypoints.reshape(-1).tolist(), "iscrowd": int(crowd), "num_keypoints": count,
            "area": area}  # fmt: skip


def _check_num_keypoints(ann: dict, labeled: int, num_keypoints: int, path: Path, where: str, counts) -> int:
    """``num_keypoints`` must agree with the flags on whether the person is labelled at all: COCOeval ignores
    exactly the people with ``num_keypoints == 0``, and training skips them. Another count is only a mistake
    in the count (some converters write K for every person): it is replaced by the flags' count, with a
    warning."""
    if "num_keypoints" not in ann:
        return labeled
    count = check_id(ann["num_keypoints"], path, where, "num_keypoints")
    if count > num_keypoints:
        fail(path, where, f"num_keypoints is {count}, more than the {num_keypoints} keypoints of the spec")
    if (count == 0) != (labeled == 0):
        fail(path, where, f"num_keypoints is {count} but {labeled} of its keypoints are labelled (v > 0); set "
             "num_keypoints to the number of keypoints with v > 0 (0 marks a person to ignore)")  # fmt: skip
    if count != labeled:
        counts["num_keypoints"].append((ann["id"], count, labeled))
    return labeled


def _clipped_area(box: list[float], image: dict) -> float:
    """The area of ``box`` inside the image: the stand-in for a missing segment ``area``."""
    x, y, w, h = box
    width = min(x + w, image["width"]) - max(x, 0.0)
    height = min(y + h, image["height"]) - max(y, 0.0)
    return max(width, 0.0) * max(height, 0.0)


def _far_outside(keypoints: np.ndarray, box: list[float]) -> bool:
    """Whether a labelled keypoint lies more than ``FAR_OUTSIDE_BOX`` box sizes (at least 8 px) outside the box,
    which suggests a box in other units or order: the person is cropped around the box, so such keypoints
    fall outside the crop."""
    x, y, w, h = box
    margin = max(FAR_OUTSIDE_BOX * max(w, h), 8.0)
    points = keypoints[keypoints[:, 2] > 0, :2]
    outside = (points[:, 0] < x - margin) | (points[:, 0] > x + w + margin)
    return bool((outside | (points[:, 1] < y - margin) | (points[:, 1] > y + h + margin)).any())


_warned: set[tuple[str, int, str]] = set()  # (file, its mtime, which warning): a file read twice warns once


def _warn(counts: dict, path: Path) -> None:
    try:
        version = Path(path).stat().st_mtime_ns
    except OSError:
        version = 0
    counts = {
        kind: found for kind, found in counts.items() if found and (str(path), version, kind) not in _warned
    }
    _warned.update((str(path), version, kind) for kind in counts)
    if counts.get("num_keypoints"):
        ann_id, count, labeled = counts["num_keypoints"][0]
        logger.warning(
            "%s: %d annotations give a num_keypoints other than their number of labelled keypoints (first: "
            "annotation id %s says %d, its flags %d); using the flags' count",
            path, len(counts["num_keypoints"]), ann_id, count, labeled,
        )  # fmt: skip
    if counts.get("far outside"):
        logger.warning(
            "%s: %d annotations have labelled keypoints far outside their bbox (first: annotation id %s); "
            "check that bbox is [x, y, width, height] in the same pixels as the keypoints",
            path, len(counts["far outside"]), counts["far outside"][0],
        )  # fmt: skip


def _as_float(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:  # an integer beyond float range
        return math.inf if value > 0 else -math.inf


def _describe(value: Any) -> str:
    """A short, one-line description of a JSON value for error messages."""
    if isinstance(value, (dict, list)):
        return f"a JSON {'object' if isinstance(value, dict) else 'list'}"
    if isinstance(value, bool) or value is None:
        return "null" if value is None else str(value).lower()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value).replace("inf", "Infinity").replace("nan", "NaN")
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
