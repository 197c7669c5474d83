"""Labelled splits: first N / seeded random, holdout, split files (data/splits.py)."""

import json
from pathlib import Path

import numpy as np
import pytest

from trspose.data.coco import PersonInstance
from trspose.data.splits import load_split, make_labeled_split, save_split, select_instances
from trspose.errors import DataError


def instances(count=40, path=Path("x.png")):
    keypoints = np.zeros((17, 3), dtype=np.float32)
    box = np.array([0, 0, 10, 10], dtype=np.float32)
    return [PersonInstance(i // 2, 100 + 3 * i, path, box, keypoints) for i in range(count)]


def test_first_and_random_splits():
    people = instances()
    first = make_labeled_split(people, num_labeled=10, seed=0, mode="first", holdout_fraction=0.2)
    assert first["labeled_ann_ids"] == [100 + 3 * i for i in range(10)]
    assert len(first["holdout_ann_ids"]) == 2 and len(first["train_ann_ids"]) == 8
    assert set(first["holdout_ann_ids"]) | set(first["train_ann_ids"]) == set(first["labeled_ann_ids"])
    assert not set(first["holdout_ann_ids"]) & set(first["train_ann_ids"])
    other_seed = make_labeled_split(people, num_labeled=10, seed=1, mode="first", holdout_fraction=0.2)
    assert other_seed["labeled_ann_ids"] == first["labeled_ann_ids"]
    random_a = make_labeled_split(people, fraction=0.25, seed=5, mode="random")
    random_b = make_labeled_split(people, fraction=0.25, seed=5, mode="random")
    assert random_a == random_b and random_a["num_labeled"] == 10 and len(random_a["holdout_ann_ids"]) == 1
    assert random_a["labeled_ann_ids"] == sorted(random_a["labeled_ann_ids"]) != first["labeled_ann_ids"]
    assert make_labeled_split(people, num_labeled=10, seed=6, mode="random") != random_a
    assert [p.ann_id for p in select_instances(people, first["train_ann_ids"])] == first["train_ann_ids"]
    with pytest.raises(ValueError, match="exactly one"):
        make_labeled_split(people, num_labeled=3, fraction=0.1)
    with pytest.raises(ValueError, match="num_labeled"):
        make_labeled_split(people, num_labeled=41)


def test_split_files_round_trip_and_validation(tmp_path):
    people = instances()
    split = make_labeled_split(people, num_labeled=12, seed=2, mode="random")
    path = save_split(split, tmp_path / "splits" / "split_random_12_seed2.json")
    assert path.name == "split_random_12_seed2.json"
    assert load_split(path, people) == split
    with pytest.raises(
        DataError, match=r"split_random_12_seed2.json: labeled_ann_ids has .* not in the annotations"
    ):
        load_split(path, people[:5])
    path.write_text(json.dumps({"mode": "first"}))
    with pytest.raises(DataError, match="split file lacks seed"):
        load_split(path, people)
    with pytest.raises(DataError, match="nothing.json: split file not found"):
        load_split(tmp_path / "nothing.json", people)
