"""Building one run's parts from a config: methods and the unlabelled pool (engine/build.py)."""

from __future__ import annotations

import json

import pytest
import torch

from tests.tiny_runs import TINY, tiny_semi_config
from trspose.config import load_config
from trspose.data.keypoints import COCO17
from trspose.data.sources import load_instances
from trspose.engine import build, trainer


def test_mean_teacher_and_dual_switch_parts_off(stick_root, tmp_path):
    mean_teacher = build.build_method(
        tiny_semi_config(stick_root, tmp_path, "mean_teacher"), build.build_model(load_config(TINY))
    )
    assert mean_teacher.cfg.reviewer.policy == "none" and not mean_teacher.cfg.keypoint_mix
    dual = build.build_method(
        tiny_semi_config(stick_root, tmp_path, "dual"), build.build_model(load_config(TINY))
    )
    assert set(dual.trainable) == {"student", "partner"}
    first, second = (next(dual.trainable[n].parameters()) for n in ("student", "partner"))
    assert not torch.equal(first, second)  # two different initialisations


def test_unlabeled_pool_from_a_folder_of_images_with_boxes(stick_root, tmp_path):
    """data.unlabeled_images + unlabeled_boxes: extra people (e.g. COCO unlabeled2017 with detector boxes)."""
    folder = tmp_path / "wild"
    folder.mkdir()
    for path in sorted((stick_root / "images" / "val").glob("*.jpg"))[:3]:
        (folder / path.name).write_bytes(path.read_bytes())
    names = sorted(p.name for p in folder.glob("*.jpg"))
    boxes = {names[0]: [[5, 5, 40, 60, 0.9], [1, 1, 20, 30, 0.1]], names[1]: [[10, 8, 30, 50]]}
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    common = [f"data.unlabeled_images={folder}", f"data.unlabeled_boxes={tmp_path / 'boxes.json'}",
              "data.unlabeled_min_box_score=0.5"]  # fmt: skip
    cfg = tiny_semi_config(stick_root, tmp_path, "trs", *common, "data.unlabeled_include_train=false")
    files = build.resolve_data(cfg)
    train = load_instances(files, COCO17, "train")
    pool = build.unlabeled_people(cfg, files, train)
    assert [p.image_path.name for p in pool] == [
        names[0],
        names[1],
    ]  # low-score box and box-less image dropped
    assert [p.box.tolist() for p in pool] == [[5, 5, 40, 60], [10, 8, 30, 50]]
    assert min(p.ann_id for p in pool) > max(
        t.ann_id for t in train
    )  # ids never collide with the train split
    both = build.unlabeled_people(tiny_semi_config(stick_root, tmp_path, "trs", *common), files, train)
    assert len(both) == len(train) + 2
    views = build.build_unlabeled(cfg, pool)
    assert [views[(i, i)].ann_id for i in range(2)] == [p.ann_id for p in pool]  # the folder's people are fed
    # and a semi-supervised run trains on that pool
    run_cfg = tiny_semi_config(stick_root, tmp_path, "trs", *common, "name=wild_run", "train.steps=4")
    metrics = trainer.train(run_cfg)
    assert 0.0 <= metrics["val/AP"] <= 100.0  # a number, not NaN
    assert json.loads((tmp_path / "wild_run" / "unlabeled_pool.json").read_text())[
        "num_instances"
    ] == 2 + len(train)
    # the stream is a function of the pool: resuming after the boxes changed would silently train on another one
    (tmp_path / "boxes.json").write_text(json.dumps({names[0]: [[5, 5, 40, 60, 0.9]]}))
    from trspose.errors import DataError

    with pytest.raises(DataError, match="unlabelled pool changed since this run started"):
        trainer.train(run_cfg, resume=True)
