"""Labelled subsets for semi-supervised training, saved as files and reused.

A split is a plain dict (JSON-serialisable) keyed by (num_labeled, seed, mode):

- ``labeled_ann_ids``: every labelled instance (``train_ann_ids`` + ``holdout_ann_ids``), file order;
- ``holdout_ann_ids``: a seeded slice of the labelled set used to pick checkpoints and reviewer
  snapshots without touching the validation set (docs/METHOD.md, "comparing methods fairly");
- ``train_ann_ids``: the labelled instances the supervised loss sees when the holdout is kept out.

``mode="first"`` takes the first N instances in annotation-file order, as the literature's COCO
1K/5K/10K settings do; ``mode="random"`` takes a seeded random subset (kept in file order).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from trspose.data.coco import PersonInstance
from trspose.errors import DataError
from trspose.io import read_json, write_json

SPLIT_MODES = ("first", "random")
SPLIT_VERSION = 1
SPLIT_KEYS = ("mode", "seed", "num_labeled", "labeled_ann_ids", "train_ann_ids", "holdout_ann_ids")


def _resolve_count(total: int, num_labeled: int | None, fraction: float | None) -> int:
    if (num_labeled is None) == (fraction is None):
        raise ValueError("give exactly one of num_labeled and fraction")
    if fraction is not None:
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        return max(1, int(round(fraction * total)))
    assert num_labeled is not None  # exactly one of the two is given
    if not 0 < num_labeled <= total:
        raise ValueError(f"num_labeled must be in [1, {total}] (the number of instances), got {num_labeled}")
    return int(num_labeled)


def _resolve_holdout(num_labeled: int, holdout_fraction: float) -> int:
    if not 0.0 <= holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must be in [0, 1), got {holdout_fraction}")
    count = int(round(holdout_fraction * num_labeled))
    if not 0 <= count < num_labeled:
        raise ValueError(
            f"the holdout ({count}) must leave at least one of {num_labeled} labelled instances to train on"
        )
    return count


def make_labeled_split(
    instances: Sequence[PersonInstance],
    *,
    num_labeled: int | None = None,
    fraction: float | None = None,
    seed: int = 0,
    mode: str = "first",
    holdout_fraction: float = 0.1,
) -> dict:
    """Choose the labelled subset and its holdout slice; see the module docstring for the keys.

    The holdout is a seeded random slice of the labelled set in both modes (10% by default [ours]),
    so ``mode="first"`` with different seeds shares the labels but not the holdout.
    """
    if mode not in SPLIT_MODES:
        raise ValueError(f"mode must be one of {SPLIT_MODES}, got {mode!r}")
    ann_ids = np.array([instance.ann_id for instance in instances], dtype=np.int64)
    if len(np.unique(ann_ids)) != len(ann_ids):
        raise DataError("the instances have duplicate ann ids; a split needs one id per person instance")
    count = _resolve_count(len(ann_ids), num_labeled, fraction)
    rng = np.random.default_rng(seed)
    if mode == "first":
        positions = np.arange(count)
    else:
        positions = np.sort(rng.choice(len(ann_ids), size=count, replace=False))
    labeled = ann_ids[positions]
    holdout_size = _resolve_holdout(count, holdout_fraction)
    holdout_mask = np.zeros(count, dtype=bool)
    holdout_mask[rng.choice(count, size=holdout_size, replace=False)] = True
    return {
        "version": SPLIT_VERSION,
        "mode": mode,
        "seed": int(seed),
        "num_labeled": int(count),
        "labeled_ann_ids": labeled.tolist(),
        "train_ann_ids": labeled[~holdout_mask].tolist(),
        "holdout_ann_ids": labeled[holdout_mask].tolist(),
    }


def save_split(split: dict, path: Path | str) -> Path:
    """Write a split as JSON (atomically: under torchrun every rank writes the same file); returns the path."""
    return write_json(split, path)


def load_split(path: Path | str, instances: Sequence[PersonInstance]) -> dict:
    """Read a split file and check that every ann id in it exists among ``instances``."""
    path = Path(path)
    split = read_json(path, "split file")
    if not isinstance(split, dict) or any(key not in split for key in SPLIT_KEYS):
        missing = SPLIT_KEYS if not isinstance(split, dict) else [k for k in SPLIT_KEYS if k not in split]
        raise DataError(f"{path}: split file lacks {', '.join(missing)}; delete it so it is made again")
    known = {instance.ann_id for instance in instances}
    for key in ("labeled_ann_ids", "train_ann_ids", "holdout_ann_ids"):
        unknown = [ann_id for ann_id in split[key] if ann_id not in known]
        if unknown:
            raise DataError(
                f"{path}: {key} has {len(unknown)} ann id(s) not in the annotations (first: {unknown[0]}); "
                "the split was made for other annotations: delete it or point to the matching annotation file"
            )
    if set(split["train_ann_ids"]) | set(split["holdout_ann_ids"]) != set(split["labeled_ann_ids"]):
        raise DataError(
            f"{path}: train_ann_ids + holdout_ann_ids differ from labeled_ann_ids; delete the file so it is made again"
        )
    return split


def labeled_split(
    instances: Sequence[PersonInstance],
    *,
    num_labeled: int,
    fraction: float,
    seed: int,
    mode: str,
    holdout_fraction: float,
    saved: Path | None,
) -> tuple[list[PersonInstance], list[PersonInstance]]:
    """(labelled training instances, labelled hold-out instances) of ``instances`` (the config's
    ``data.num_labeled`` / ``labeled_fraction``, 0 meaning all; ``split_mode``, ``split_seed``, ``holdout_fraction``).
    The split is read from ``saved`` if that file exists (a resumed run), else made and written there."""
    if saved is not None and saved.is_file():
        split = load_split(saved, instances)
    else:
        split = make_labeled_split(
            instances,
            num_labeled=num_labeled or (None if fraction else len(instances)),
            fraction=fraction or None,
            seed=seed,
            mode=mode,
            holdout_fraction=holdout_fraction,
        )
        if saved is not None:
            save_split(split, saved)
    if num_labeled == 0 and fraction == 0 and holdout_fraction == 0:
        return list(instances), []
    return select_instances(instances, split["train_ann_ids"]), select_instances(
        instances, split["holdout_ann_ids"]
    )


def select_instances(instances: Sequence[PersonInstance], ann_ids: Sequence[int]) -> list[PersonInstance]:
    """The instances whose ann id is in ``ann_ids``, in the instances' (file) order."""
    wanted = set(int(ann_id) for ann_id in ann_ids)
    return [instance for instance in instances if instance.ann_id in wanted]


def check_unlabeled_pool(instances: Sequence[PersonInstance], path: Path | str) -> None:
    """Record the unlabelled pool's fingerprint in the run folder, or check that it has not changed.

    The unlabelled stream is a pure function of the pool, so a resumed run is only exact if the pool (e.g. a
    folder of images with detector boxes) is the one the run started with.
    """
    digest = hashlib.sha1()
    for instance in instances:
        box = ",".join(f"{v:.2f}" for v in instance.box)
        digest.update(f"{instance.image_path.name}|{instance.ann_id}|{box}\n".encode())
    record = {"num_instances": len(instances), "sha1": digest.hexdigest()}
    path = Path(path)
    if path.is_file():
        saved = read_json(path, "unlabelled pool record")
        if saved != record:
            raise DataError(
                f"{path}: the unlabelled pool changed since this run started ({saved.get('num_instances')} -> "
                f"{record['num_instances']} people); restore the images and boxes, or start a new run"
            )
        return
    write_json(record, path)
