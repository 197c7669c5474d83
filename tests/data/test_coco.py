"""COCO reading: instances, skips, clipping, detector boxes, image folders, and bad input."""

import json
import logging

import cv2
import numpy as np
import pytest

from trspose.data.coco import load_coco_instances, load_image, load_image_folder_with_boxes
from trspose.data.keypoints import COCO17
from trspose.errors import DataError


def keypoint_list(count=17, visible=True):
    return [v for k in range(count) for v in (10.0 + k, 20.0 + k, 2 if visible else 0)]


def write_image(path, height=60, width=80, value=100):
    image = np.full((height, width, 3), value, dtype=np.uint8)
    image[:, :, 0] = 200  # red in RGB -> check the BGR -> RGB swap
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return image


def write_coco(tmp_path, annotations=None):
    images_dir = tmp_path / "images"
    images_dir.mkdir(exist_ok=True)
    for name in ("a.png", "b.png"):
        write_image(images_dir / name)
    data = {
        "images": [
            {"id": 1, "file_name": "a.png", "width": 80, "height": 60},
            {"id": 2, "file_name": "b.png", "width": 80, "height": 60},
        ],
        "categories": [COCO17.coco_category()],
        "annotations": annotations
        if annotations is not None
        else [
            {"id": 11, "image_id": 1, "category_id": 1, "bbox": [10, 5, 30, 40], "area": 900.0, "iscrowd": 0,
             "num_keypoints": 17, "keypoints": keypoint_list()},
            {"id": 12, "image_id": 1, "category_id": 1, "bbox": [0, 0, 20, 20], "iscrowd": 1,
             "num_keypoints": 17, "keypoints": keypoint_list()},
            {"id": 13, "image_id": 2, "category_id": 1, "bbox": [5, 5, 10, 10], "iscrowd": 0,
             "num_keypoints": 0, "keypoints": keypoint_list(visible=False)},
            {"id": 14, "image_id": 2, "category_id": 1, "bbox": [60, -10, 40, 50], "iscrowd": 0,
             "num_keypoints": 3, "keypoints": keypoint_list()},
            {"id": 15, "image_id": 2, "category_id": 1, "bbox": [90, 10, 5, 5], "iscrowd": 0,
             "num_keypoints": 3, "keypoints": keypoint_list()},
        ],
    }  # fmt: skip
    ann_file = tmp_path / "person_keypoints.json"
    ann_file.write_text(json.dumps(data))
    return ann_file, images_dir


def test_load_instances_skips_crowd_empty_and_unlabeled(tmp_path, caplog):
    ann_file, images_dir = write_coco(tmp_path)
    with caplog.at_level(logging.WARNING):
        instances = load_coco_instances(ann_file, images_dir, COCO17)
    assert [i.ann_id for i in instances] == [11, 14]  # 12 crowd, 13 no keypoints, 15 box outside
    assert "skipped 1 annotations" in caplog.text
    first, clipped = instances
    assert first.image_id == 1 and first.image_path == images_dir / "a.png" and first.area == 900.0
    np.testing.assert_allclose(first.box, [10, 5, 30, 40])
    assert first.keypoints.shape == (17, 3) and first.keypoints.dtype == np.float32
    np.testing.assert_allclose(first.keypoints[3], [13, 23, 2])
    np.testing.assert_allclose(clipped.box, [60, 0, 20, 40])  # clipped to the 80x60 image
    assert clipped.area == pytest.approx(800.0) and clipped.box_score == 1.0
    everything = load_coco_instances(ann_file, images_dir, COCO17, require_keypoints=False)
    assert [i.ann_id for i in everything] == [11, 13, 14]


def test_detector_boxes_replace_ground_truth(tmp_path):
    ann_file, images_dir = write_coco(tmp_path)
    boxes = tmp_path / "dets.json"
    boxes.write_text(json.dumps([
        {"image_id": 2, "category_id": 1, "bbox": [1, 2, 30, 40], "score": 0.9},
        {"image_id": 1, "category_id": 1, "bbox": [5, 5, 10, 10], "score": 0.2},
        {"image_id": 1, "category_id": 2, "bbox": [5, 5, 10, 10], "score": 0.99},
    ]))  # fmt: skip
    instances = load_coco_instances(ann_file, images_dir, COCO17, boxes_file=boxes, min_box_score=0.5)
    assert len(instances) == 1
    det = instances[0]
    assert det.image_id == 2 and det.ann_id == 1 and det.box_score == pytest.approx(0.9)
    np.testing.assert_allclose(det.box, [1, 2, 30, 40])
    assert not det.keypoints.any() and det.keypoints.shape == (17, 3)
    boxes.write_text(json.dumps([{"image_id": 99, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 1.0}]))
    with pytest.raises(DataError, match="image_id 99"):
        load_coco_instances(ann_file, images_dir, COCO17, boxes_file=boxes)


def test_wrong_keypoint_count_names_annotation(tmp_path):
    ann = {"id": 77, "image_id": 1, "bbox": [1, 1, 5, 5], "num_keypoints": 1, "keypoints": keypoint_list(16)}
    ann_file, images_dir = write_coco(tmp_path, [ann])
    with pytest.raises(DataError, match=r"annotation id 77: keypoints must be 51 numbers, got a list of 48"):
        load_coco_instances(ann_file, images_dir, COCO17)


def test_bad_annotation_files(tmp_path):
    ann_file, images_dir = write_coco(tmp_path)
    with pytest.raises(DataError, match="missing.json: annotation file not found"):
        load_coco_instances(tmp_path / "missing.json", images_dir, COCO17)
    broken = tmp_path / "broken.json"
    broken.write_text('{"images": [\n  {"id": 1,,}\n]}')
    with pytest.raises(DataError, match=r"broken.json: malformed JSON at line 2 column"):
        load_coco_instances(broken, images_dir, COCO17)
    broken.write_text('{"annotations": []}')
    with pytest.raises(DataError, match="lacks key\\(s\\) images"):
        load_coco_instances(broken, images_dir, COCO17)
    with pytest.raises(DataError, match="image folder not found"):
        load_coco_instances(ann_file, tmp_path / "nope", COCO17)
    empty_file, _ = write_coco(tmp_path, [])
    with pytest.raises(DataError, match="no usable person instances"):
        load_coco_instances(empty_file, images_dir, COCO17)


def test_load_image_rgb_and_bad_files(tmp_path):
    expected = write_image(tmp_path / "ok.png")
    np.testing.assert_array_equal(load_image(tmp_path / "ok.png"), expected)
    rng = np.random.default_rng(0)
    ok, encoded = cv2.imencode(".jpg", rng.integers(0, 255, (64, 48, 3), dtype=np.uint8))
    data = encoded.tobytes()
    for cut in (len(data) // 2, len(data) - 10):
        (tmp_path / "cut.jpg").write_bytes(data[:cut])
        with pytest.raises(DataError, match=r"cut.jpg: truncated JPEG"):
            load_image(tmp_path / "cut.jpg")
    (tmp_path / "junk.jpg").write_bytes(b"not an image at all")
    with pytest.raises(DataError, match="junk.jpg: not a readable image"):
        load_image(tmp_path / "junk.jpg")
    with pytest.raises(DataError, match="gone.png: image not found"):
        load_image(tmp_path / "gone.png")


def test_image_folder_with_and_without_boxes(tmp_path):
    write_image(tmp_path / "b.jpg", 50, 40)
    write_image(tmp_path / "a.png", 60, 80)
    (tmp_path / "notes.txt").write_text("ignored")
    whole, names = load_image_folder_with_boxes(tmp_path)
    assert [(i.image_path.name, i.image_id, i.ann_id) for i in whole] == [("a.png", 1, 1), ("b.jpg", 2, 2)]
    assert names == {1: "a.png", 2: "b.jpg"}
    np.testing.assert_allclose(whole[1].box, [0, 0, 40, 50])
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"b.jpg": [[1, 2, 10, 20], [5, 5, 100, 100, 0.3]]}))
    found, _ = load_image_folder_with_boxes(tmp_path, boxes)
    assert [(i.image_id, i.ann_id, i.box_score) for i in found] == [(2, 1, 1.0), (2, 2, 0.3)]
    np.testing.assert_allclose(found[1].box, [5, 5, 35, 45])
    assert len(load_image_folder_with_boxes(tmp_path, boxes, min_box_score=0.5)[0]) == 1
    boxes.write_text(json.dumps([{"file_name": "a.png", "bbox": [0, 0, 5, 5], "score": 0.8}]))
    assert load_image_folder_with_boxes(tmp_path, boxes)[0][0].image_id == 1
    single, names = load_image_folder_with_boxes([tmp_path / "b.jpg"])  # files work as well as folders
    assert names == {1: "b.jpg"} and single[0].image_path == tmp_path / "b.jpg"
    boxes.write_text(json.dumps({"c.jpg": [[1, 2, 10, 20]]}))
    with pytest.raises(DataError, match="names none of the input images"):
        load_image_folder_with_boxes(tmp_path, boxes)
    # a dataset-wide detections file works on a subset of its images
    boxes.write_text(json.dumps({"c.jpg": [[1, 2, 10, 20]], "a.png": [[0, 0, 5, 5, 0.7]]}))
    subset, _ = load_image_folder_with_boxes([tmp_path / "a.png"], boxes)
    assert [(i.image_path.name, i.box_score) for i in subset] == [("a.png", 0.7)]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .jpg or .png images"):
        load_image_folder_with_boxes(tmp_path / "empty")
    with pytest.raises(DataError, match="notes.txt: not a .jpg or .png image"):
        load_image_folder_with_boxes([tmp_path / "notes.txt"])
    with pytest.raises(DataError, match="missing: no such image or folder"):
        load_image_folder_with_boxes([tmp_path / "missing"])


def test_whole_image_box_follows_the_exif_orientation_opencv_applies(tmp_path):
    """A phone photo stored sideways (EXIF orientation 6) is decoded upright: its whole-image box must be too."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(np.zeros((20, 40, 3), np.uint8)).save(tmp_path / "phone.jpg", exif=exif.tobytes())
    (instance,), _ = load_image_folder_with_boxes([tmp_path / "phone.jpg"])
    height, width = load_image(tmp_path / "phone.jpg").shape[:2]
    assert (height, width) == (40, 20)
    np.testing.assert_allclose(instance.box, [0, 0, width, height])


@pytest.mark.parametrize(
    "boxes",
    [{"000001.jpg": [[1, 2, 3]]}, {"000001.jpg": [[1, 2, 3, "wide"]]}, [{"file_name": "000001.jpg", "bbox": [1, 2, 3]}],
     [{"file_name": "000001.jpg", "bbox": [1, 2, 3, 4], "score": None}]],
)  # fmt: skip
def test_a_malformed_boxes_file_is_a_data_error_naming_it(stick_root, tmp_path, boxes):
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    with pytest.raises(DataError, match=r"boxes\.json: .*\[x, y, w, h"):
        load_image_folder_with_boxes(stick_root / "images" / "train", tmp_path / "boxes.json")
