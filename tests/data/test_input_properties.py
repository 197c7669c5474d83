"""Property-based tests of every reader of user files (issue 16): any JSON value, and any mutation of a valid
file (dropped keys, wrong types, NaN, negative sizes, huge numbers, duplicated entries, unicode), either loads
into a valid dataset or raises the project's one-line error (``TrsposeError``); never another exception.
The same holds for what ``predict`` reads: any bytes as an image file.

The normal suite runs a fixed, derandomised budget (``EXAMPLES`` per test, a few seconds in all). For a longer,
randomised search, set ``TRSPOSE_HYPOTHESIS_EXAMPLES``, e.g.
``TRSPOSE_HYPOTHESIS_EXAMPLES=5000 bash scripts/test.sh tests/data/test_input_properties.py``.
"""

from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, currently_in_test_context, event, given, settings
from hypothesis import strategies as st

from trspose.cli import one_line
from trspose.config import load_config
from trspose.data.coco import PersonInstance, load_coco_instances, load_image_folder_with_boxes
from trspose.data.keypoints import COCO17
from trspose.engine import build
from trspose.errors import TrsposeError
from trspose.evaluation import evaluate_coco_keypoints, make_results

K = COCO17.num_keypoints
TINY = Path(__file__).parents[2] / "configs" / "tiny.yaml"
ON_DEMAND = int(os.environ.get("TRSPOSE_HYPOTHESIS_EXAMPLES", "0"))


def budget(examples: int):
    """``examples`` derandomised examples in the normal suite; ``TRSPOSE_HYPOTHESIS_EXAMPLES`` random ones on
    demand. No example database (nothing written into the tree); no deadline (a loaded CI machine is slow)."""
    return settings(
        max_examples=ON_DEMAND or examples,
        derandomize=not ON_DEMAND,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# --- strategies -------------------------------------------------------------------------------------------

SPECIAL_NUMBERS = [0, 1, 2, 3, -1, 0.5, -0.0, 1e-320, 1e308, -1e308, 2**63, -(2**63) - 1, 2**64, 10**400,
                   math.nan, math.inf, -math.inf, True, False]  # fmt: skip
SPECIAL_STRINGS = ["", " ", "\x00", "\ud800", "../1.png", "nested/1.png", "日本語.png", "1.png\n", "NaN", "1"]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(SPECIAL_NUMBERS),
    st.text(max_size=12),
    st.sampled_from(SPECIAL_STRINGS),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=6), st.dictionaries(st.text(max_size=8), children, max_size=6)
    ),
    max_leaves=30,
)


def mutate(document, data: st.DataObject, steps: int = 3):
    """Apply 1..``steps`` random edits at random places of a JSON document (in place); returns it."""
    for _ in range(data.draw(st.integers(1, steps), label="edits")):
        node = document
        while True:
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            if not keys:
                break
            key = data.draw(st.sampled_from(keys), label="key")
            child = node[key]
            if isinstance(child, (dict, list)) and child and data.draw(st.booleans(), label="descend"):
                node = child
                continue
            _edit(node, key, data)
            break
    return document


EDITS = ["delete", "replace", "duplicate", "scale", "wrap", "add key", "reverse"]


def _edit(node, key, data: st.DataObject) -> None:
    """One edit of ``node[key]``: delete it, replace it by any JSON value, duplicate it (e.g. a repeated id),
    scale a number (negative, zero, huge, NaN), wrap it in a list, add an unknown key beside it, or reverse
    the list it is in."""
    operation = data.draw(st.sampled_from(EDITS), label="edit")
    value = node[key]
    if operation == "delete":
        del node[key]
    elif operation == "replace":
        node[key] = data.draw(json_values, label="value")
    elif operation == "duplicate" and isinstance(node, list):
        node.insert(key, copy.deepcopy(value))
    elif operation == "scale" and type(value) in (int, float):
        factors = [-1, 0, 0.5, 1.5, 1e6, 1e12, 1e300, math.nan]
        node[key] = value * data.draw(st.sampled_from(factors), label="factor")
    elif operation == "add key" and isinstance(node, dict):
        node[data.draw(st.text(max_size=8), label="new key")] = data.draw(json_values, label="value")
    elif operation == "reverse" and isinstance(node, list):
        node.reverse()
    elif operation == "wrap":
        node[key] = [value]


# --- valid inputs ------------------------------------------------------------------------------------------


def person(ann_id: int, image_id: int, x: float, y: float, flags: int = 2) -> dict:
    points = [(x + 2 + (k % 5) * 6, y + 2 + (k // 5) * 9, flags) for k in range(K)]
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "bbox": [x, y, 30.0, 40.0],
            "area": 1000.0, "num_keypoints": K if flags else 0,
            "keypoints": [float(v) for p in points for v in p]}  # fmt: skip


def valid_coco() -> dict:
    return {
        "images": [{"id": i, "file_name": f"{i}.png", "width": 64, "height": 56} for i in (1, 2, 3)],
        "annotations": [person(11, 1, 10, 8), person(12, 2, 4, 4), person(13, 2, 30, 10), person(14, 3, 20, 12, 0)],
        "categories": [COCO17.coco_category()],
    }  # fmt: skip


def valid_detections() -> list:
    return [
        {"image_id": 1, "category_id": 1, "bbox": [10.0, 8.0, 30.0, 40.0], "score": 0.9},
        {"image_id": 2, "category_id": 1, "bbox": [4.0, 4.0, 30.0, 40.0], "score": 0.7},
        {"image_id": 3, "category_id": 1, "bbox": [20.0, 12.0, 30.0, 40.0], "score": 0.2},
    ]


def valid_folder_boxes() -> dict:
    return {"a.png": [[1.0, 2.0, 30.0, 40.0], [5.0, 5.0, 20.0, 20.0, 0.4]], "b.jpg": [[0, 0, 10, 10, 1]]}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Three 64x56 images for the annotation files, and a.png / b.jpg for predict's folder reader."""
    root = tmp_path_factory.mktemp("properties")
    (root / "images").mkdir()
    (root / "predict").mkdir()
    for i in (1, 2, 3):
        cv2.imwrite(str(root / "images" / f"{i}.png"), np.full((56, 64, 3), 40 * i, np.uint8))
    cv2.imwrite(str(root / "predict" / "a.png"), np.full((50, 60, 3), 90, np.uint8))
    cv2.imwrite(str(root / "predict" / "b.jpg"), np.full((40, 30, 3), 150, np.uint8))
    return root


@pytest.fixture(scope="module")
def tiny_cfg():
    return load_config(TINY)


def write_json(path: Path, value) -> Path:
    path.write_text(json.dumps(value), encoding="utf-8")  # NaN / Infinity written as such, as json.dumps does
    return path


# --- what a valid dataset is ---------------------------------------------------------------------------------


def assert_valid_instances(instances: list[PersonInstance]) -> None:
    assert instances
    for inst in instances:
        assert type(inst.image_id) is int and type(inst.ann_id) is int and inst.image_path.is_file()
        assert inst.box.shape == (4,) and np.isfinite(inst.box).all() and (inst.box[2:] > 0).all()
        assert inst.keypoints.shape == (K, 3) and np.isfinite(inst.keypoints).all()
        assert np.isin(inst.keypoints[:, 2], (0, 1, 2)).all()
        assert math.isfinite(inst.box_score) and math.isfinite(inst.area) and inst.area >= 0


def assert_crops_and_targets_are_finite(cfg, instances: list[PersonInstance]) -> None:
    dataset = build.build_dataset(cfg, instances[:2], train=True)
    for index in range(len(dataset)):
        sample = dataset[index]
        assert np.isfinite(sample.image.numpy()).all() and np.isfinite(sample.heatmaps).all()
        assert np.isfinite(sample.target_weight).all() and np.isfinite(sample.keypoints).all()


def load_or_one_line_error(load):
    """``load()``'s value, or None when it raised a TrsposeError (which the CLI prints as one ``error:`` line);
    any other exception fails the test. Each outcome is counted (``--hypothesis-show-statistics``)."""
    try:
        value = load()
    except TrsposeError as error:
        assert one_line(error)
        count(f"error: {type(error).__name__}")
        return None
    count("loaded")
    return value


def count(outcome: str) -> None:
    if currently_in_test_context():
        event(outcome)


# --- annotation files -------------------------------------------------------------------------------------


def check_annotation_file(path: Path, folder: Path, cfg) -> None:
    instances = load_or_one_line_error(lambda: load_coco_instances(path, folder / "images", COCO17))
    if instances is None:
        return
    assert_valid_instances(instances)
    assert_crops_and_targets_are_finite(cfg, instances)
    keypoints = np.stack([inst.keypoints[:, :2] for inst in instances])  # ground truth as predictions
    results = make_results([i.image_id for i in instances], keypoints, np.ones((len(instances), K)),
                           np.ones(len(instances)))  # fmt: skip
    metrics = evaluate_coco_keypoints(path, results)
    assert all(math.isnan(v) or 0.0 <= v <= 1.0 for v in metrics.values())


@budget(60)
@given(value=json_values)
def test_any_json_value_as_an_annotation_file(value, folder, tiny_cfg):
    check_annotation_file(write_json(folder / "any.json", value), folder, tiny_cfg)


@budget(150)
@given(data=st.data())
def test_any_mutation_of_a_valid_annotation_file(data, folder, tiny_cfg):
    document = mutate(valid_coco(), data)
    check_annotation_file(write_json(folder / "mutated.json", document), folder, tiny_cfg)


def test_the_valid_files_themselves_load(folder, tiny_cfg):
    """The properties above are not vacuous: the unmutated files load, evaluate and crop."""
    check_annotation_file(write_json(folder / "valid.json", valid_coco()), folder, tiny_cfg)
    ann = write_json(folder / "valid.json", valid_coco())
    boxes = write_json(folder / "dets.json", valid_detections())
    assert len(load_coco_instances(ann, folder / "images", COCO17, boxes_file=boxes)) == 3
    boxes = write_json(folder / "boxes.json", valid_folder_boxes())
    assert len(load_image_folder_with_boxes(folder / "predict", boxes)[0]) == 3


# --- detection files (eval --boxes, data.val_boxes) and predict's boxes -------------------------------------


def check_detections(path: Path, folder: Path, cfg) -> None:
    ann = write_json(folder / "valid.json", valid_coco())
    instances = load_or_one_line_error(
        lambda: load_coco_instances(ann, folder / "images", COCO17, boxes_file=path, require_keypoints=False)
    )
    if instances is not None:
        assert_valid_instances(instances)
        assert_crops_and_targets_are_finite(cfg, instances)


@budget(40)
@given(value=json_values)
def test_any_json_value_as_a_detections_file(value, folder, tiny_cfg):
    check_detections(write_json(folder / "any_dets.json", value), folder, tiny_cfg)


@budget(100)
@given(data=st.data())
def test_any_mutation_of_a_valid_detections_file(data, folder, tiny_cfg):
    check_detections(
        write_json(folder / "mutated_dets.json", mutate(valid_detections(), data)), folder, tiny_cfg
    )


def check_folder_boxes(path: Path, folder: Path, cfg) -> None:
    loaded = load_or_one_line_error(lambda: load_image_folder_with_boxes(folder / "predict", path))
    if loaded is not None:
        instances, names = loaded
        assert_valid_instances(instances)
        assert set(names) >= {inst.image_id for inst in instances}
        assert_crops_and_targets_are_finite(cfg, instances)


@budget(40)
@given(value=json_values)
def test_any_json_value_as_a_predict_boxes_file(value, folder, tiny_cfg):
    check_folder_boxes(write_json(folder / "any_boxes.json", value), folder, tiny_cfg)


@budget(80)
@given(data=st.data(), as_list=st.booleans())
def test_any_mutation_of_a_valid_predict_boxes_file(data, as_list, folder, tiny_cfg):
    boxes = valid_folder_boxes()
    if as_list:  # the other accepted layout: [{file_name, bbox, score}, ...]
        boxes = [
            {"file_name": name, "bbox": b[:4], "score": (b + [1.0])[4]}
            for name, bs in boxes.items()
            for b in bs
        ]
    check_folder_boxes(write_json(folder / "mutated_boxes.json", mutate(boxes, data)), folder, tiny_cfg)


# --- predict: any bytes as an image file --------------------------------------------------------------------

HEADERS = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM", b"GIF89a", b"II*\x00", b"MM\x00*", b"P6\n",
           b"P5\n3 2\n255\n", b"RIFF\x00\x00\x00\x00WEBP", b"\x00\x00\x00\x0cjP  "]  # fmt: skip


def encoded_images() -> st.SearchStrategy[bytes]:
    """Real PNG / JPEG bytes of small random pictures, cut short or with some bytes changed."""

    @st.composite
    def damaged(draw) -> bytes:
        height, width = draw(st.integers(1, 24)), draw(st.integers(1, 24))
        suffix = draw(st.sampled_from([".png", ".jpg", ".bmp", ".tiff"]))
        pixels = np.random.default_rng(draw(st.integers(0, 2**16))).integers(
            0, 256, (height, width, 3), np.uint8
        )
        data = bytearray(cv2.imencode(suffix, pixels)[1].tobytes())
        for _ in range(draw(st.integers(0, 3))):
            position = draw(st.integers(0, len(data) - 1))
            data[position] = draw(st.integers(0, 255))
        return bytes(data[: draw(st.integers(0, len(data)))] if draw(st.booleans()) else data)

    return damaged()


image_bytes = st.one_of(
    st.binary(max_size=200),
    st.tuples(st.sampled_from(HEADERS), st.binary(max_size=200)).map(lambda parts: parts[0] + parts[1]),
    encoded_images(),
)


@budget(150)
@given(content=image_bytes, suffix=st.sampled_from([".png", ".jpg"]))
def test_any_bytes_as_an_image_to_predict_on(content, suffix, folder, tiny_cfg):
    path = folder / f"input{suffix}"
    path.write_bytes(content)
    loaded = load_or_one_line_error(lambda: load_image_folder_with_boxes([path]))
    if loaded is None:
        return
    instances, _ = loaded
    assert_valid_instances(instances)
    sample = load_or_one_line_error(lambda: build.build_dataset(tiny_cfg, instances, train=False)[0])
    assert sample is None or np.isfinite(sample.image.numpy()).all()
