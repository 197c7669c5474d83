"""Grids keep each picture's aspect ratio; dataset statistics of real data have no synthetic-only rows."""

import json

import numpy as np

from trspose.apps.drawing import make_grid
from trspose.data.keypoints import COCO17
from trspose.data.synthetic import dataset_statistics, format_statistics


def test_grid_letterboxes_pictures_of_another_shape_instead_of_stretching_them():
    landscape = np.zeros((40, 80, 3), np.uint8)  # the first picture sets the cell: 40 x 80
    portrait = np.zeros((80, 40, 3), np.uint8)
    portrait[:, :, 2] = 255  # red, in BGR
    grid = make_grid([landscape, portrait], columns=2, gap=2)
    assert grid.shape == (40, 2 * 80 + 2, 3)
    cell = grid[:, 82:]
    red = (cell[:, :, 2] > 200) & (cell[:, :, 0] < 50)
    rows, columns = np.flatnonzero(red.any(axis=1)), np.flatnonzero(red.any(axis=0))
    assert (len(rows), len(columns)) == (40, 20)  # scaled by 1/2: 80x40 -> 40x20, aspect ratio kept
    assert columns[0] == 30 and (cell[:, :30] == 255).all()  # centred on white


def test_statistics_of_real_data_have_no_pose_mode_row(tmp_path):
    keypoints = [v for k in range(17) for v in (10.0 + k, 20.0, 2)]
    data = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 80}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 5, 40, 60], "area": 2000.0,
                         "iscrowd": 0, "num_keypoints": 17, "keypoints": keypoints}],
        "categories": [COCO17.coco_category()],
    }  # fmt: skip
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "person_keypoints_val.json").write_text(json.dumps(data))
    statistics = dataset_statistics(tmp_path, splits=("val",))
    assert statistics["val"]["instances"] == 1 and statistics["val"]["pose_modes"] == {}
    assert "pose_modes" not in format_statistics(statistics)
