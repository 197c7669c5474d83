"""The one place where a config becomes objects: data, model, method, optimiser."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trspose.config import ExperimentConfig, pixel_normalization
from trspose.data.coco import PersonInstance, load_coco_instances, load_image_folder_with_boxes
from trspose.data.codec import HeatmapCodec
from trspose.data.datasets import TopDownDataset
from trspose.data.keypoints import SPECS, KeypointSpec
from trspose.data.splits import load_split, make_labeled_split, save_split, select_instances
from trspose.data.transforms import AugmentConfig, TopDownTransform
from trspose.data.unlabeled import UnlabeledViewsDataset
from trspose.engine.distributed import DistributedContext, barrier
from trspose.errors import ConfigError
from trspose.methods.base import Method
from trspose.methods.dual import DualNetworks
from trspose.methods.supervised import Supervised
from trspose.methods.teacher_student import TeacherReviewerStudent
from trspose.models import build_pose_model


@dataclass
class DataFiles:
    """Resolved paths of one dataset."""

    root: Path
    train_annotations: Path
    train_images: Path
    val_annotations: Path
    val_images: Path
    val_boxes: Path | None
    unlabeled_images: Path | None = None
    unlabeled_boxes: Path | None = None


def keypoint_spec(cfg: ExperimentConfig) -> KeypointSpec:
    if cfg.data.keypoints not in SPECS:
        raise ConfigError(f"data.keypoints '{cfg.data.keypoints}' is unknown; choose one of {sorted(SPECS)}")
    return SPECS[cfg.data.keypoints]


def resolve_data(
    cfg: ExperimentConfig, ctx: DistributedContext | None = None, progress: bool = True
) -> DataFiles:
    """Find (and for the synthetic dataset, generate once, on rank 0) the dataset files."""
    data = cfg.data
    if data.dataset == "synthetic":
        from trspose.data.synthetic import ensure_dataset

        root = None
        if ctx is None or ctx.is_main:
            root = ensure_dataset(
                data.synthetic_size, seed=data.synthetic_seed, root=data.root or None, progress=progress
            )
        barrier()
        if root is None:  # other ranks: the dataset now exists, this call only looks it up
            root = ensure_dataset(
                data.synthetic_size, seed=data.synthetic_seed, root=data.root or None, progress=False
            )
    else:
        if not data.root:
            raise ConfigError("data.root is empty; set it to the folder of your COCO-format dataset")
        root = Path(data.root)

    def under_root(p: str) -> Path:
        return Path(p) if Path(p).is_absolute() else Path(root) / p

    return DataFiles(
        root=Path(root),
        train_annotations=under_root(data.train_annotations),
        train_images=under_root(data.train_images),
        val_annotations=under_root(data.val_annotations),
        val_images=under_root(data.val_images),
        val_boxes=under_root(data.val_boxes) if data.val_boxes else None,
        unlabeled_images=under_root(data.unlabeled_images) if data.unlabeled_images else None,
        unlabeled_boxes=under_root(data.unlabeled_boxes) if data.unlabeled_boxes else None,
    )


def build_codec(cfg: ExperimentConfig) -> HeatmapCodec:
    h, w = cfg.data.input_size
    return HeatmapCodec(input_size=(h, w), heatmap_size=(h // 4, w // 4), sigma=cfg.data.sigma)


def train_augment(cfg: ExperimentConfig) -> AugmentConfig:
    d = cfg.data
    return AugmentConfig(
        scale_factor=d.scale_factor,
        rotation_deg=d.rotation_deg,
        rotation_prob=d.rotation_prob,
        flip_prob=d.flip_prob,
        half_body_prob=d.half_body_prob,
    )


def build_dataset(cfg: ExperimentConfig, instances: list[PersonInstance], train: bool) -> TopDownDataset:
    spec = keypoint_spec(cfg)
    transform = TopDownTransform(cfg.data.input_size, spec, train_augment(cfg) if train else None)
    return TopDownDataset(
        instances,
        spec,
        build_codec(cfg),
        transform,
        seed=cfg.train.seed,
        normalization=pixel_normalization(cfg.model),
    )


def labeled_split(
    cfg: ExperimentConfig, instances: list[PersonInstance], run_dir: Path | None
) -> tuple[list[PersonInstance], list[PersonInstance]]:
    """(labelled training instances, labelled hold-out instances); the split file is saved in the run folder.

    With neither num_labeled nor labeled_fraction set, every instance is labelled.
    """
    d = cfg.data
    saved = run_dir / "split.json" if run_dir else None
    if saved is not None and saved.is_file():
        split = load_split(saved, instances)
    else:
        split = make_labeled_split(
            instances,
            num_labeled=d.num_labeled or (None if d.labeled_fraction else len(instances)),
            fraction=d.labeled_fraction or None,
            seed=d.split_seed,
            mode=d.split_mode,
            holdout_fraction=d.holdout_fraction,
        )
        if saved is not None:
            save_split(split, saved)
    if d.num_labeled == 0 and d.labeled_fraction == 0 and d.holdout_fraction == 0:
        return list(instances), []
    return select_instances(instances, split["train_ann_ids"]), select_instances(
        instances, split["holdout_ann_ids"]
    )


def load_instances(files: DataFiles, spec: KeypointSpec, split: str) -> list[PersonInstance]:
    if split == "train":
        return load_coco_instances(files.train_annotations, files.train_images, spec)
    return load_coco_instances(
        files.val_annotations,
        files.val_images,
        spec,
        boxes_file=files.val_boxes,
        require_keypoints=files.val_boxes is None,
    )


def build_model(cfg: ExperimentConfig) -> torch.nn.Module:
    m = cfg.model
    return build_pose_model(
        backbone=m.backbone,
        num_keypoints=keypoint_spec(cfg).num_keypoints,
        input_size=tuple(cfg.data.input_size),
        mfl_levels=tuple(m.mfl_levels),
        fuse_levels=m.fuse_levels,
        pretrained=m.pretrained,
        head_channels=m.head_channels,
        head=m.head,
        channels_last=m.channels_last,
    )


def bare_config(cfg: ExperimentConfig) -> ExperimentConfig:
    """``cfg`` without pretrained backbone weights: for networks whose weights come from a checkpoint next (no
    ImageNet weights read for nothing, no hub access)."""
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, pretrained=""))


def level_weights(cfg: ExperimentConfig) -> dict[str, float]:
    weights = cfg.model.mfl_weights or [1.0] * len(cfg.model.mfl_levels)
    return dict(zip(cfg.model.mfl_levels, weights))


def build_method(cfg: ExperimentConfig, model: torch.nn.Module) -> Method:
    """``method.name`` chooses the method; all share the loop, the data and the evaluation."""
    name, weights = cfg.method.name, level_weights(cfg)
    flip_index = keypoint_spec(cfg).flip_index()
    if name == "supervised":
        return Supervised(model, weights)
    if name == "dual":
        torch.manual_seed(cfg.train.seed + 1)  # the partner starts from a different random initialisation
        return DualNetworks(model, build_model(cfg), weights, cfg.method, flip_index)
    return TeacherReviewerStudent(
        model, weights, teacher_student_config(cfg), flip_index, seed=cfg.train.seed
    )


def teacher_student_config(cfg: ExperimentConfig):
    """The MethodConfig a TRS-family method runs with: 'mean_teacher' (the PoseCons family, one network + its
    EMA) is TRS with the reviewer and Keypoint-Mix switched off."""
    if cfg.method.name != "mean_teacher":
        return cfg.method
    return dataclasses.replace(
        cfg.method, keypoint_mix=False, reviewer=dataclasses.replace(cfg.method.reviewer, policy="none")
    )


def unlabeled_instances(
    cfg: ExperimentConfig, files: DataFiles, train: list[PersonInstance]
) -> list[PersonInstance]:
    """The unlabelled pool: the training split's person boxes (labelled people included, as in the literature;
    jittered by ``method.unlabeled_box_jitter`` to mimic detector boxes) and/or a folder of extra images with
    person boxes (``data.unlabeled_images``, e.g. COCO unlabeled2017 with detector boxes, used as they are).
    Keypoints are never read from it."""
    d, jitter = cfg.data, cfg.method.unlabeled_box_jitter
    if jitter > 0:
        rng = np.random.default_rng(cfg.train.seed + 12345)
        train = [_jitter_box(inst, jitter, rng) for inst in train]
    if not d.unlabeled_images:
        return list(train)
    extra, _ = load_image_folder_with_boxes(
        files.unlabeled_images,
        files.unlabeled_boxes,
        spec=keypoint_spec(cfg),
        min_box_score=d.unlabeled_min_box_score,
    )
    # ids must not collide with the training split's (pseudo-label bookkeeping and logs use them)
    image_offset = max((inst.image_id for inst in train), default=0)
    ann_offset = max((inst.ann_id for inst in train), default=0)
    extra = [
        dataclasses.replace(inst, image_id=inst.image_id + image_offset, ann_id=inst.ann_id + ann_offset)
        for inst in extra
    ]
    return [*train, *extra] if d.unlabeled_include_train else extra


def build_unlabeled(cfg: ExperimentConfig, instances: list[PersonInstance]) -> UnlabeledViewsDataset:
    """Weak/strong views of the unlabelled pool (see ``unlabeled_instances``), keypoints ignored."""
    return UnlabeledViewsDataset(
        instances,
        keypoint_spec(cfg),
        cfg.data.input_size,
        cfg.method.weak_view,
        cfg.method.strong_view,
        seed=cfg.train.seed + 1,
        normalization=pixel_normalization(cfg.model),
    )


def _jitter_box(instance: PersonInstance, jitter: float, rng: np.random.Generator) -> PersonInstance:
    x, y, w, h = instance.box
    dx, dy, dw, dh = rng.uniform(-jitter, jitter, size=4)
    box = np.array([x + dx * w, y + dy * h, w * (1 + dw), h * (1 + dh)], dtype=np.float32)
    return dataclasses.replace(instance, box=box)


def build_optimizer(cfg: ExperimentConfig, parameters) -> torch.optim.Optimizer:
    t = cfg.train
    if t.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=t.lr, weight_decay=t.weight_decay)
    return torch.optim.Adam(parameters, lr=t.lr, weight_decay=t.weight_decay)
