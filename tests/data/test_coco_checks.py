"""Field-by-field checks of COCO annotation and detection files (issue 16, cases 2-4 and 6)."""

from __future__ import annotations

import copy
import json
import logging

import cv2
import numpy as np
import pytest

from trspose.data.coco import load_coco_instances, load_image_folder_with_boxes
from trspose.data.keypoints import COCO17
from trspose.errors import DataError
from trspose.evaluation import evaluate_coco_keypoints, make_results

K = COCO17.num_keypoints


def person(ann_id: int, image_id: int, x: float = 10.0, y: float = 8.0) -> dict:
    """A labelled person whose 17 keypoints lie inside its 30x40 box."""
    points = [(x + 2 + (k % 5) * 6, y + 2 + (k // 5) * 9, 2) for k in range(K)]
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "bbox": [x, y, 30.0, 40.0],
            "area": 1000.0, "num_keypoints": K, "keypoints": [float(v) for p in points for v in p]}  # fmt: skip


def valid_coco() -> dict:
    return {
        "images": [{"id": i, "file_name": f"{i}.png", "width": 64, "height": 56} for i in (1, 2, 3)],
        "annotations": [person(11, 1), person(12, 2), person(13, 2, x=30.0), person(14, 3)],
        "categories": [COCO17.coco_category()],
    }


@pytest.fixture
def image_dir(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in (1, 2, 3):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((56, 64, 3), 90, np.uint8))
    return folder


def write(tmp_path, data, name="ann.json", raw: str | None = None):
    path = tmp_path / name
    path.write_text(raw if raw is not None else json.dumps(data))
    return path


def load(tmp_path, image_dir, data, **kwargs):
    return load_coco_instances(write(tmp_path, data), image_dir, COCO17, **kwargs)


def test_a_valid_file_loads_every_person(tmp_path, image_dir):
    instances = load(tmp_path, image_dir, valid_coco())
    assert [i.ann_id for i in instances] == [11, 12, 13, 14] and [i.image_id for i in instances] == [
        1,
        2,
        2,
        3,
    ]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("field, index", [("keypoints", 4), ("bbox", 2), ("area", None)])
def test_non_finite_numbers_in_annotations_name_file_annotation_and_field(
    tmp_path, image_dir, literal, field, index
):
    """Case 2: json.load reads NaN / Infinity, and pycocotools scored a NaN OKS as a match."""
    data = valid_coco()
    marker = 123456.5
    if index is None:
        data["annotations"][1][field] = marker
    else:
        data["annotations"][1][field][index] = marker
    text = json.dumps(data).replace("123456.5", literal)
    path = write(tmp_path, None, raw=text)
    where = f"{field}\\[{index}\\]" if index is not None else field
    with pytest.raises(DataError, match=rf"ann.json: annotation id 12: {where} is -?(NaN|Infinity)"):
        load_coco_instances(path, image_dir, COCO17)
    with pytest.raises(
        DataError, match="annotation id 12"
    ):  # evaluation checks the ground truth the same way
        evaluate_coco_keypoints(path, [])


def test_a_nan_keypoint_no_longer_scores_as_a_match(tmp_path):
    """Case 2 as reported: the same predictions scored 0 against the clean file and >0 against a NaN one."""
    clean = valid_coco()
    results = make_results([1], np.full((1, K, 2), 500.0), np.ones((1, K)), np.ones(1))  # far from everyone
    assert evaluate_coco_keypoints(write(tmp_path, clean, "clean.json"), results)["AP"] == 0.0
    text = json.dumps(clean).replace('"keypoints": [12.0', '"keypoints": [NaN', 1)
    with pytest.raises(DataError, match=r"annotation id 11: keypoints\[0\] is NaN"):
        evaluate_coco_keypoints(write(tmp_path, None, "nan.json", raw=text), results)


@pytest.mark.parametrize("literal", ["NaN", "Infinity"])
def test_non_finite_numbers_in_detections_name_the_entry(tmp_path, image_dir, literal):
    ann = write(tmp_path, valid_coco())
    dets = [{"image_id": 1, "category_id": 1, "bbox": [1, 2, 30, 40], "score": 0.9} for _ in range(3)]
    dets[2]["bbox"][3] = 123456.5
    boxes = write(tmp_path, None, "dets.json", raw=json.dumps(dets).replace("123456.5", literal))
    with pytest.raises(DataError, match=rf"dets.json: entry 2: bbox\[3\] is {literal}"):
        load_coco_instances(ann, image_dir, COCO17, boxes_file=boxes)
    dets[2]["bbox"][3], dets[1]["score"] = 40, 123456.5
    boxes.write_text(json.dumps(dets).replace("123456.5", literal))
    with pytest.raises(DataError, match=rf"dets.json: entry 1: score is {literal}"):
        load_coco_instances(ann, image_dir, COCO17, boxes_file=boxes)


def test_num_keypoints_must_agree_with_the_flags_on_whether_a_person_is_labeled(tmp_path, image_dir, caplog):
    """Case 3: every v=0 with num_keypoints > 0 made eval print AP 100 (pycocotools fell back to a box test)."""
    data = valid_coco()
    data["annotations"][2]["keypoints"][2::3] = [0] * K
    with pytest.raises(
        DataError, match="annotation id 13: num_keypoints is 17 but 0 of its keypoints are labelled"
    ):
        load(tmp_path, image_dir, data)
    predictions = make_results([1], np.full((1, K, 2), 500.0), np.ones((1, K)), np.ones(1))
    with pytest.raises(DataError, match="annotation id 13: num_keypoints"):
        evaluate_coco_keypoints(write(tmp_path, data, "gt.json"), predictions)
    data = valid_coco()
    data["annotations"][0]["num_keypoints"] = 0  # labelled keypoints, but marked to be ignored
    with pytest.raises(DataError, match="annotation id 11: num_keypoints is 0 but 17 of its keypoints"):
        load(tmp_path, image_dir, data)
    data = valid_coco()  # another non-zero count is a miscount: recomputed, with one warning for the file
    for ann in data["annotations"][1:3]:
        ann["num_keypoints"] = 5
    with caplog.at_level(logging.WARNING):
        assert len(load(tmp_path, image_dir, data)) == 4
    assert (
        "2 annotations give a num_keypoints other than" in caplog.text
        and "annotation id 12 says 5" in caplog.text
    )


def test_a_file_without_categories_or_a_person_category_is_refused_before_anything_runs(tmp_path, image_dir):
    """Case 4: read fine, then KeyError: 'categories' inside pycocotools at evaluation."""
    data = valid_coco()
    del data["categories"]
    with pytest.raises(DataError, match="ann.json: the top level: lacks 'categories'"):
        load(tmp_path, image_dir, data)
    results = make_results([1], np.ones((1, K, 2)), np.ones((1, K)), np.ones(1))
    with pytest.raises(DataError, match="lacks 'categories'"):
        evaluate_coco_keypoints(write(tmp_path, data, "gt.json"), results)
    data["categories"] = [{"id": 1, "name": "human"}]  # no keypoint names, and not called person
    with pytest.raises(DataError, match="categories: lists no keypoint category"):
        load(tmp_path, image_dir, data)


def test_the_keypoint_category_may_have_any_name_and_id_and_data_category_picks_one_of_several(
    tmp_path, image_dir
):
    data = valid_coco()
    data["categories"] = [{**COCO17.coco_category(), "id": 7, "name": "mouse"}]
    for ann in data["annotations"]:
        ann["category_id"] = 7
    assert [i.ann_id for i in load(tmp_path, image_dir, data)] == [11, 12, 13, 14]
    data["categories"].append({**COCO17.coco_category(), "id": 8, "name": "rat"})
    data["annotations"][0]["category_id"] = 8
    with pytest.raises(
        DataError, match=r"lists 2 keypoint categories \('mouse', 'rat'\); choose one with data.category"
    ):
        load(tmp_path, image_dir, data)
    assert [i.ann_id for i in load(tmp_path, image_dir, data, category="rat")] == [11]
    with pytest.raises(
        DataError, match="has no category named 'cat' \\(data.category\\); it has 'mouse', 'rat'"
    ):
        load(tmp_path, image_dir, data, category="cat")
    # scored for that category too: the ground truth of 'mouse' against its own people
    results = make_results([2, 2, 3], np.ones((3, K, 2)), np.ones((3, K)), np.ones(3))
    metrics = evaluate_coco_keypoints(write(tmp_path, data, "gt.json"), results, category="mouse")
    assert 0.0 <= metrics["AP"] <= 1.0


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda d: d["annotations"][1].pop("bbox"), r"annotations\[1\]: lacks key\(s\) bbox"),
        (lambda d: d["annotations"][1].__setitem__("bbox", "10 8 30 40"), "annotation id 12: bbox must be 4 numbers"),
        (lambda d: d["annotations"][1]["bbox"].__setitem__(2, -5), "annotation id 12: bbox .* negative width"),
        (lambda d: d["annotations"][1]["keypoints"].__setitem__(5, 3), r"annotation id 12: keypoints\[5\] .* flag"),
        (lambda d: d["annotations"][1]["keypoints"].__setitem__(0, 1e300), r"within \+-1e\+06 px"),
        (lambda d: d["annotations"][1].__setitem__("id", 0), r"annotations\[1\]: id is 0; it must be an integer from 1"),
        (lambda d: d["annotations"][1].__setitem__("id", 11), r"annotation id 11: appears twice"),
        (lambda d: d["annotations"][1].__setitem__("image_id", 9), "annotation id 12: refers to image_id 9"),
        (lambda d: d["annotations"][1].__setitem__("iscrowd", "no"), "annotation id 12: iscrowd is 'no'"),
        (lambda d: d["images"][1].__setitem__("id", 1), "image id 1: appears twice"),
        (lambda d: d["images"][1].__setitem__("width", 0), r"image id 2: width is 0; it must lie in \[1,"),
        (lambda d: d["images"][1].__setitem__("file_name", None), "image id 2: file_name is null"),
        (lambda d: d.__setitem__("annotations", {}), "'annotations' is a JSON object; it must be a list"),
    ],
)  # fmt: skip
def test_malformed_fields_are_one_line_errors_naming_the_entry(tmp_path, image_dir, mutate, match):
    data = valid_coco()
    mutate(data)
    with pytest.raises(DataError, match=match) as error:
        load(tmp_path, image_dir, data)
    assert "\n" not in str(error.value)


def test_string_box_or_score_in_detections_is_type_checked_field_by_field(tmp_path, image_dir):
    """Case 6: a string bbox or score raised ValueError / TypeError (or a string "1" was silently read)."""
    ann = write(tmp_path, valid_coco())
    good = {"image_id": 1, "category_id": 1, "bbox": [1, 2, 30, 40], "score": 0.9}
    for field, value, match in [
        ("bbox", ["1", 2, 30, 40], r"entry 1: bbox\[0\] is '1'; it must be a number"),
        ("bbox", ["x", 2, 30, 40], r"entry 1: bbox\[0\] is 'x'; it must be a number"),
        ("bbox", [1, 2, 30], "entry 1: bbox must be 4 numbers, got a list of 3"),
        ("score", "0.9", "entry 1: score is '0.9'; it must be a number"),
        ("score", None, "entry 1: score is null; it must be a number"),
        ("image_id", "1", "entry 1: image_id is '1'; it must be an integer"),
        ("category_id", [1], "entry 1: category_id is a JSON list"),
    ]:
        bad = copy.deepcopy(good)
        bad[field] = value
        boxes = write(tmp_path, [good, bad], "dets.json")
        with pytest.raises(DataError, match=match):
            load_coco_instances(ann, image_dir, COCO17, boxes_file=boxes)
    boxes = write(tmp_path, {"image_id": 1}, "dets.json")
    with pytest.raises(DataError, match="expected a COCO detection-results list"):
        load_coco_instances(ann, image_dir, COCO17, boxes_file=boxes)


def test_predict_boxes_are_checked_for_finite_numbers_and_file_names(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.full((20, 30, 3), 90, np.uint8))
    boxes = write(tmp_path, None, "boxes.json", raw='{"a.png": [[0, 0, 10, NaN]]}')
    with pytest.raises(DataError, match=r"boxes.json: 'a.png': bbox\[3\] is NaN"):
        load_image_folder_with_boxes(tmp_path, boxes)
    boxes.write_text(json.dumps([{"file_name": ["a.png"], "bbox": [0, 0, 5, 5]}]))
    with pytest.raises(DataError, match="entry 0: file_name must be a string"):
        load_image_folder_with_boxes(tmp_path, boxes)


def test_labeled_keypoints_far_outside_their_box_draw_one_warning(tmp_path, image_dir, caplog):
    """A 1x1 box whose keypoints span the person was used silently."""
    data = valid_coco()
    data["annotations"][1]["bbox"] = [12.0, 10.0, 1.0, 1.0]
    with caplog.at_level(logging.WARNING):
        load(tmp_path, image_dir, data)
    assert (
        "1 annotations have labelled keypoints far outside their bbox (first: annotation id 12)"
        in caplog.text
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load(tmp_path, image_dir, valid_coco())
    assert "far outside" not in caplog.text


def test_other_categories_are_skipped_and_missing_optional_fields_are_completed(tmp_path, image_dir):
    data = valid_coco()
    data["annotations"][0]["category_id"] = 2  # not a person: skipped, in training and evaluation alike
    for key in ("area", "iscrowd", "num_keypoints", "category_id"):
        del data["annotations"][3][key]
    path = write(tmp_path, data)
    instances = load_coco_instances(path, image_dir, COCO17)
    assert [i.ann_id for i in instances] == [12, 13, 14] and instances[-1].area == 30.0 * 40.0
    people = [a for a in data["annotations"] if a.get("category_id", 1) == 1]
    keypoints = np.array([a["keypoints"] for a in people]).reshape(-1, K, 3)[..., :2]
    results = make_results([a["image_id"] for a in people], keypoints, np.ones((3, K)), np.ones(3))
    assert evaluate_coco_keypoints(path, results)["AP"] == pytest.approx(1.0)
