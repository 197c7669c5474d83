"""The one place where a config becomes objects.

``build_training_run`` reads the config once and returns everything ``trainer.fit`` reads besides the ``train``
settings: the labelled and unlabelled data, the method (which holds the model), and the evaluators of the
validation set and of the labelled hold-out slice. The smaller builders serve eval / predict / export and the
tools (training preview, video, diagnostics).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trspose.config import ExperimentConfig, config_to_dict, pixel_normalization
from trspose.data.coco import PersonInstance, load_image_folder_with_boxes, read_keypoint_file
from trspose.data.codec import HeatmapCodec, heatmap_size_for
from trspose.data.datasets import TopDownDataset
from trspose.data.keypoints import KeypointSpec
from trspose.data.sources import DataFiles, load_instances
from trspose.data.splits import check_unlabeled_pool, labeled_split
from trspose.data.transforms import TopDownTransform
from trspose.data.unlabeled import UnlabeledViewsDataset, unlabeled_pool
from trspose.engine.distributed import DistributedContext, barrier
from trspose.errors import ConfigError, DataError
from trspose.evaluation.inference import Evaluator
from trspose.evaluation.pseudo_label_quality import PseudoLabelProbe
from trspose.methods.base import Method
from trspose.methods.dual import DualNetworks
from trspose.methods.supervised import Supervised
from trspose.methods.trs import TeacherReviewerStudent
from trspose.models import build_pose_model


@dataclass(frozen=True)
class Seeds:
    """Every random stream of a run, derived from ``train.seed`` in one place (the offsets are those runs have
    always used, so recorded runs reproduce)."""

    base: int

    def loop(self, rank: int) -> int:  # each rank's global RNG during training
        return self.base + rank

    @property
    def keypoint_mix(self) -> int:  # TRS's Keypoint-Mix and joint-cutout draws (with rank and step)
        return self.base

    @property
    def labeled(self) -> int:  # labelled stream: order and augmentation
        return self.base

    @property
    def unlabeled(self) -> int:  # unlabelled stream: order and both views
        return self.base + 1

    @property
    def dual_partner(self) -> int:  # initial weights of the dual-networks partner
        return self.base + 1

    @property
    def box_jitter(self) -> int:  # jitter of the unlabelled people's boxes
        return self.base + 12345


@dataclass
class TrainingRun:
    """Everything ``fit`` reads besides the ``train`` settings, built once from the config."""

    method: Method  # holds the model(s)
    labeled: TopDownDataset  # train transform
    unlabeled: UnlabeledViewsDataset | None  # weak/strong views; None for supervised training
    validation: Evaluator  # COCO AP on the validation set
    holdout: Evaluator | None  # PCK on the labelled hold-out slice (selection, reviewer)
    pseudo_labels: PseudoLabelProbe | None  # unlabelled people with hidden ground truth; None: not measured
    seeds: Seeds
    workers: int  # loader processes per stream
    config: dict  # the resolved config, written to config.yaml and into every checkpoint


def build_training_run(
    cfg: ExperimentConfig, run_dir: Path | None, ctx: DistributedContext, *, resume: bool = False
) -> TrainingRun:
    """Data, model, method and evaluators of one training run. A resumed run's weights come from its
    checkpoint, so its backbone is not initialised from pretrained weights first."""
    spec = keypoint_spec(cfg)
    seeds = Seeds(cfg.train.seed)
    built = bare_config(cfg) if resume else cfg
    method = build_method(built, build_model(built), rank=ctx.rank)
    files = resolve_data(cfg, ctx)
    train_people = load_instances(files, spec, "train")
    labeled, holdout = labeled_people(cfg, train_people, run_dir / "split.json" if run_dir else None)
    if cfg.method.name == "trs" and cfg.method.reviewer.policy == "memory" and ctx.world_size > 1:
        raise ConfigError(
            "method.reviewer.policy=memory keeps each process's people apart and runs in one process for now; "
            "train it without torchrun, or choose another method.reviewer.policy"
        )
    if cfg.method.name == "trs" and cfg.method.reviewer.policy == "best" and not holdout:
        raise ConfigError(
            f"method.reviewer.policy=best scores the teacher on the labelled hold-out, and data.holdout_fraction="
            f"{cfg.data.holdout_fraction:g} of {len(labeled)} labelled people rounds to none; raise "
            "data.holdout_fraction or data.num_labeled, or choose another method.reviewer.policy"
        )
    unlabeled, probe = None, None
    if method.uses_unlabeled:
        pool = unlabeled_people(cfg, files, train_people)
        if run_dir is not None:
            check_unlabeled_pool(pool, run_dir / "unlabeled_pool.json")  # a resume must see the same pool
        unlabeled = build_unlabeled(cfg, pool)
        probe = pseudo_label_probe(cfg, pool, labeled=[*labeled, *holdout])
    return TrainingRun(
        method=method,
        labeled=build_dataset(cfg, labeled, train=True),
        unlabeled=unlabeled,
        validation=validation_evaluator(cfg, files),
        holdout=build_evaluator(cfg, holdout) if holdout else None,
        pseudo_labels=probe,
        seeds=seeds,
        workers=cfg.data.workers,
        config=config_to_dict(cfg),
    )


# ---------------------------------------------------------------------------------------------------------------
# Data


def keypoint_spec(cfg: ExperimentConfig) -> KeypointSpec:
    layout = cfg.data.layout  # filled in from data.keypoints when the config loaded
    return KeypointSpec(tuple(layout.names), tuple(map(tuple, layout.skeleton)),  # type: ignore[arg-type]
                        tuple(map(tuple, layout.flip_pairs)), tuple(layout.sigmas))  # type: ignore[arg-type]  # fmt: skip


def resolve_data(
    cfg: ExperimentConfig, ctx: DistributedContext | None = None, progress: bool = True
) -> DataFiles:
    """Find (and for the synthetic dataset, generate once, on rank 0) the dataset files."""
    data = cfg.data
    if data.dataset == "synthetic":
        from trspose.data.synthetic import ensure_dataset

        root = None
        if ctx is None or ctx.is_main:
            root = ensure_dataset(data.synthetic_size, seed=data.synthetic_seed, root=data.root or None,
                                  progress=progress, keypoints=data.keypoints)  # fmt: skip
        barrier()
        if root is None:  # other ranks: the dataset now exists, this call only looks it up
            root = ensure_dataset(data.synthetic_size, seed=data.synthetic_seed, root=data.root or None,
                                  progress=False, keypoints=data.keypoints)  # fmt: skip
    else:
        if not data.root:
            raise ConfigError("data.root is empty; set it to the folder of your COCO-format dataset")
        root = Path(data.root)
    return DataFiles.under(
        Path(root),
        category=data.category,
        train_annotations=data.train_annotations,
        train_images=data.train_images,
        val_annotations=data.val_annotations,
        val_images=data.val_images,
        val_boxes=data.val_boxes,
        unlabeled_images=data.unlabeled_images,
        unlabeled_boxes=data.unlabeled_boxes,
    )


def build_codec(cfg: ExperimentConfig) -> HeatmapCodec:
    input_size = tuple(cfg.data.input_size)
    return HeatmapCodec(
        input_size=input_size, heatmap_size=heatmap_size_for(input_size), sigma=cfg.data.sigma
    )


def build_dataset(cfg: ExperimentConfig, instances: list[PersonInstance], train: bool) -> TopDownDataset:
    """Crops of ``instances`` with their target heatmaps: augmented (``train``) or the plain eval crop."""
    data = cfg.data
    spec = keypoint_spec(cfg)
    transform = TopDownTransform(data.input_size, spec, data.labeled_view if train else None)
    return TopDownDataset(
        instances, spec, build_codec(cfg), transform, seed=Seeds(cfg.train.seed).labeled,
        normalization=pixel_normalization(cfg.model),
    )  # fmt: skip


def labeled_people(
    cfg: ExperimentConfig, train: list[PersonInstance], saved: Path | None
) -> tuple[list[PersonInstance], list[PersonInstance]]:
    """(labelled training people, labelled hold-out people) of the training split (``data.num_labeled`` ...;
    see ``data.splits.labeled_split``), the split read from or written to ``saved``."""
    data = cfg.data
    return labeled_split(
        train, num_labeled=data.num_labeled, fraction=data.labeled_fraction, seed=data.split_seed, mode=data.split_mode,
        holdout_fraction=data.holdout_fraction, saved=saved,
    )  # fmt: skip


def unlabeled_people(
    cfg: ExperimentConfig, files: DataFiles, train: list[PersonInstance]
) -> list[PersonInstance]:
    """The unlabelled pool of a run (``data.unlabeled_*``; see ``data.unlabeled.unlabeled_pool``)."""
    data = cfg.data
    extra: list[PersonInstance] = []
    if files.unlabeled_images:
        extra, _ = load_image_folder_with_boxes(
            files.unlabeled_images, files.unlabeled_boxes, spec=keypoint_spec(cfg),
            min_box_score=data.unlabeled_min_box_score,
        )  # fmt: skip
    return unlabeled_pool(
        train, extra, include_train=data.unlabeled_include_train, box_jitter=data.unlabeled_box_jitter,
        seed=Seeds(cfg.train.seed).box_jitter,
    )  # fmt: skip


def build_unlabeled(cfg: ExperimentConfig, instances: list[PersonInstance]) -> UnlabeledViewsDataset:
    """Weak/strong views of the unlabelled pool (see ``unlabeled_people``), keypoints ignored."""
    data = cfg.data
    return UnlabeledViewsDataset(
        instances, keypoint_spec(cfg), data.input_size, data.weak_view, data.strong_view,
        seed=Seeds(cfg.train.seed).unlabeled, normalization=pixel_normalization(cfg.model),
        strong_views=data.strong_views,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# Evaluation


def build_evaluator(
    cfg: ExperimentConfig,
    people: list[PersonInstance],
    *,
    annotations: Path | None = None,
    oks_nms: bool = False,
    image_ids: list[int] | None = None,
) -> Evaluator:
    """How ``cfg`` predicts (``eval.*``: flip test, decoding, batch size) ``people``, scored against
    ``annotations`` when given."""
    spec = keypoint_spec(cfg)
    return Evaluator(
        dataset=build_dataset(cfg, people, train=False),
        codec=build_codec(cfg),
        flip_index=spec.flip_index() if cfg.eval.flip_test else None,
        decode=cfg.eval.decode,
        batch_size=cfg.eval.batch_size,
        sigmas=np.asarray(spec.sigmas),
        annotations=annotations,
        oks_nms=oks_nms,
        image_ids=image_ids,
        category=cfg.data.category,
    )


def validation_evaluator(cfg: ExperimentConfig, files: DataFiles) -> Evaluator:
    """The validation set (on detector boxes with OKS-NMS when ``data.val_boxes`` is set; only the first
    ``eval.max_images`` images, ground truth and predictions alike, when that is set)."""
    people = load_instances(files, keypoint_spec(cfg), "val")
    image_ids = None
    if cfg.eval.max_images:
        images = read_keypoint_file(files.val_annotations, keypoint_spec(cfg), cfg.data.category)["images"]
        image_ids = sorted(image["id"] for image in images)[: cfg.eval.max_images]
        people = [inst for inst in people if inst.image_id in set(image_ids)]
        if not people:
            raise DataError(
                f"{files.val_annotations}: its first {cfg.eval.max_images} images (eval.max_images) hold no "
                "person to evaluate; raise eval.max_images"
            )
    return build_evaluator(
        cfg,
        people,
        annotations=files.val_annotations,
        oks_nms=files.val_boxes is not None,
        image_ids=image_ids,
    )


def pseudo_label_probe(
    cfg: ExperimentConfig, pool: list[PersonInstance], labeled: list[PersonInstance]
) -> PseudoLabelProbe | None:
    """``eval.pseudo_label_people`` people of the unlabelled pool that are not labelled and have ground truth,
    spread evenly over it; None when off or when no such person exists (e.g. a folder of extra images)."""
    wanted = cfg.eval.pseudo_label_people
    candidates = unlabeled_with_truth(pool, {inst.ann_id for inst in labeled})
    if not wanted or not candidates:
        return None
    chosen = candidates[:: max(1, len(candidates) // wanted)][:wanted]
    return PseudoLabelProbe(
        build_dataset(cfg, chosen, train=False), batch_size=cfg.train.unlabeled_batch_size
    )


def unlabeled_with_truth(pool: list[PersonInstance], labeled_ids: set[int]) -> list[PersonInstance]:
    """The people of the unlabelled pool that are not labelled (training split or hold-out) and have ground truth
    that training never reads: what pseudo-labels can be checked against."""
    return [inst for inst in pool if inst.ann_id not in labeled_ids and (inst.keypoints[:, 2] > 0).any()]


# ---------------------------------------------------------------------------------------------------------------
# Model and method


def build_model(cfg: ExperimentConfig) -> torch.nn.Module:
    model = cfg.model
    return build_pose_model(
        backbone=model.backbone,
        num_keypoints=keypoint_spec(cfg).num_keypoints,
        input_size=cfg.data.input_size,
        mfl_levels=tuple(model.mfl_levels),
        fuse_levels=model.fuse_levels,
        pretrained=model.pretrained,
        head_channels=model.head_channels,
        head=model.head,
        channels_last=model.channels_last,
    )


def bare_config(cfg: ExperimentConfig) -> ExperimentConfig:
    """``cfg`` without pretrained backbone weights: for networks whose weights come from a checkpoint next (no
    ImageNet weights read for nothing, no hub access)."""
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, pretrained=""))


def level_weights(cfg: ExperimentConfig) -> dict[str, float]:
    weights = cfg.model.mfl_weights or [1.0] * len(cfg.model.mfl_levels)
    return dict(zip(cfg.model.mfl_levels, weights))


def _supervised(cfg: ExperimentConfig, model: torch.nn.Module, rank: int) -> Method:
    return Supervised(model, level_weights(cfg))


def _mean_teacher(cfg: ExperimentConfig, model: torch.nn.Module, rank: int) -> Method:
    flip_index = keypoint_spec(cfg).flip_index()
    return TeacherReviewerStudent.mean_teacher(
        model, level_weights(cfg), cfg.method, flip_index, build_codec(cfg),
        seed=Seeds(cfg.train.seed).keypoint_mix, rank=rank,
    )  # fmt: skip


def _dual(cfg: ExperimentConfig, model: torch.nn.Module, rank: int) -> Method:
    torch.manual_seed(Seeds(cfg.train.seed).dual_partner)  # the partner starts from other random head weights
    partner = build_model(cfg)
    return DualNetworks(model, partner, level_weights(cfg), cfg.method, keypoint_spec(cfg).flip_index())


def _trs(cfg: ExperimentConfig, model: torch.nn.Module, rank: int) -> Method:
    flip_index = keypoint_spec(cfg).flip_index()
    return TeacherReviewerStudent(
        model, level_weights(cfg), cfg.method, flip_index, build_codec(cfg),
        seed=Seeds(cfg.train.seed).keypoint_mix, rank=rank,
    )  # fmt: skip


# method.name -> constructor; all share the loop, the data and the evaluation
METHODS: dict[str, Callable[[ExperimentConfig, torch.nn.Module, int], Method]] = {
    "supervised": _supervised,
    "mean_teacher": _mean_teacher,
    "dual": _dual,
    "trs": _trs,
}


def build_method(cfg: ExperimentConfig, model: torch.nn.Module, rank: int = 0) -> Method:
    """The method ``method.name`` around ``model`` (``rank`` decides its per-rank random draws)."""
    return METHODS[cfg.method.name](cfg, model, rank)
