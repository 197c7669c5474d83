"""Weak and strong views of unlabelled people, with the exact geometry between them.

The teacher (and reviewer) predict heatmaps on the weak view; the student learns on the strong
view. ``weak_to_strong`` maps weak-view heatmap pixels to strong-view heatmap pixels, so
``warp_heatmaps(teacher_heatmaps, batch.weak_to_strong, spec.flip_index(), batch.flipped)`` gives
pseudo-targets aligned with the student's input (docs/METHOD.md: the transform A between the views).

The two views are drawn independently around the same person box (keypoints are ignored, so no
half-body); regions of the strong view that the weak view did not see get zero pseudo-heatmaps. A person can have
several strong views (``strong_views``, MultiAugs' several hard views of one image), each drawn independently and
each with its own ``weak_to_strong``; the teacher still predicts once, on the one weak view.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from trspose.data.coco import PersonInstance, load_image
from trspose.data.codec import heatmap_size_for
from trspose.data.datasets import BatchMixin, normalize_image, sample_rng, split_key
from trspose.data.geometry import compose_affine, input_to_heatmap_matrix, invert_affine
from trspose.data.keypoints import KeypointSpec
from trspose.data.normalization import IMAGENET, Normalization
from trspose.data.transforms import AugmentConfig, StrongAugmentConfig, TopDownTransform

WEAK_STREAM, STRONG_STREAM = 1, 2


def unlabeled_pool(
    train: Sequence[PersonInstance],
    extra: Sequence[PersonInstance] = (),
    *,
    include_train: bool = True,
    box_jitter: float = 0.0,
    seed: int = 0,
) -> list[PersonInstance]:
    """The unlabelled people: the training split's person boxes (labelled people included, as in the literature;
    jittered by ``box_jitter`` of their size, drawn from ``seed``, to mimic detector boxes) and/or ``extra`` people
    (e.g. COCO unlabeled2017 with detector boxes, used as they are). Keypoints are never read from it."""
    if box_jitter > 0:
        rng = np.random.default_rng(seed)
        train = [_jitter_box(inst, box_jitter, rng) for inst in train]
    # ids must not collide with the training split's (pseudo-label bookkeeping and logs use them)
    image_offset = max((inst.image_id for inst in train), default=0)
    ann_offset = max((inst.ann_id for inst in train), default=0)
    extra = [
        dataclasses.replace(inst, image_id=inst.image_id + image_offset, ann_id=inst.ann_id + ann_offset)
        for inst in extra
    ]
    return [*train, *extra] if include_train else extra


def _jitter_box(instance: PersonInstance, jitter: float, rng: np.random.Generator) -> PersonInstance:
    x, y, w, h = instance.box
    dx, dy, dw, dh = rng.uniform(-jitter, jitter, size=4)
    box = np.array([x + dx * w, y + dy * h, w * (1 + dw), h * (1 + dh)], dtype=np.float32)
    return dataclasses.replace(instance, box=box)


@dataclass
class UnlabeledSample:
    """The weak view and the V strong views of one person (picklable for worker processes)."""

    weak: torch.Tensor  # (3, H, W) float32 normalised
    strong: torch.Tensor  # (V, 3, H, W) float32 normalised
    weak_to_strong: np.ndarray  # (V, 2, 3) weak-heatmap px -> each strong view's heatmap px
    flipped: np.ndarray  # (V,) bool, each strong view mirrored relative to the weak view
    strong_crop_to_image: np.ndarray  # (V, 2, 3) strong crop px -> image px
    weak_crop_to_image: np.ndarray  # (2, 3) weak crop px -> image px (pictures draw the ground truth with it)
    image_id: int
    ann_id: int


@dataclass
class UnlabeledBatch(BatchMixin):
    """A batch of B people: one weak view each and V strong views each, the strong views person by person
    (rows ``b * V`` to ``b * V + V - 1`` are person ``b``'s); V = 1 unless ``data.strong_views`` says more."""

    weak: torch.Tensor  # (B, 3, H, W) float32 normalised
    strong: torch.Tensor  # (B * V, 3, H, W) float32 normalised
    weak_to_strong: torch.Tensor  # (B * V, 2, 3) float32 weak-heatmap px -> strong-heatmap px
    flipped: torch.Tensor  # (B * V,) bool, strong mirrored relative to weak (swap left/right channels)
    image_id: torch.Tensor  # (B,) long
    ann_id: torch.Tensor  # (B,) long
    weak_crop_to_image: torch.Tensor  # (B, 2, 3) float32 weak crop px -> image px
    strong_crop_to_image: torch.Tensor  # (B * V, 2, 3) float32 strong crop px -> image px


def collate_unlabeled(samples: Sequence[UnlabeledSample]) -> UnlabeledBatch:
    """Stack :class:`UnlabeledSample` s into an :class:`UnlabeledBatch` (the DataLoader ``collate_fn``)."""

    return UnlabeledBatch(
        weak=torch.stack([s.weak for s in samples]),
        strong=torch.cat([s.strong for s in samples]),
        weak_to_strong=torch.from_numpy(
            np.concatenate([s.weak_to_strong for s in samples]).astype(np.float32)
        ),
        flipped=torch.from_numpy(np.concatenate([s.flipped for s in samples])),
        image_id=torch.tensor([s.image_id for s in samples], dtype=torch.long),
        ann_id=torch.tensor([s.ann_id for s in samples], dtype=torch.long),
        weak_crop_to_image=torch.from_numpy(
            np.stack([s.weak_crop_to_image for s in samples]).astype(np.float32)
        ),
        strong_crop_to_image=torch.from_numpy(
            np.concatenate([s.strong_crop_to_image for s in samples]).astype(np.float32)
        ),
    )


def view_to_view_heatmap_matrix(
    weak_crop_to_image: np.ndarray,
    strong_crop_to_image: np.ndarray,
    input_size: Sequence[int],
    heatmap_size: Sequence[int],
) -> np.ndarray:
    """(2, 3) weak-heatmap px -> weak crop px -> image px -> strong crop px -> strong-heatmap px."""
    crop_to_heatmap = input_to_heatmap_matrix(input_size, heatmap_size)
    return compose_affine(
        crop_to_heatmap,
        invert_affine(strong_crop_to_image),
        weak_crop_to_image,
        invert_affine(crop_to_heatmap),
    )


class UnlabeledViewsDataset(torch.utils.data.Dataset):
    """A weak view and ``strong_views`` strong views of person boxes; deterministic per (seed, index, draw). The
    first strong view is drawn as it was before there could be several, so one view reproduces earlier runs."""

    def __init__(
        self,
        instances: Sequence[PersonInstance],
        spec: KeypointSpec,
        input_size: Sequence[int],
        weak: AugmentConfig,
        strong: StrongAugmentConfig,
        seed: int = 0,
        heatmap_size: Sequence[int] | None = None,
        normalization: Normalization = IMAGENET,
        strong_views: int = 1,
    ) -> None:
        self.instances = list(instances)
        self.strong_views = int(strong_views)
        self.normalization = normalization
        self.spec = spec
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.heatmap_size = tuple(heatmap_size) if heatmap_size else heatmap_size_for(self.input_size)
        self.weak_transform = TopDownTransform(self.input_size, spec, weak)
        self.strong_transform = TopDownTransform(self.input_size, spec, strong)
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.instances)

    def __getitem__(self, key: int | tuple[int, int]) -> UnlabeledSample:
        index, draw = split_key(key)
        instance = self.instances[index]
        # Keypoints are ignored on unlabelled data (no half-body crops, cutout at random places).
        instance = dataclasses.replace(instance, keypoints=np.zeros_like(instance.keypoints))
        image = load_image(instance.image_path)  # (H, W, 3)
        weak = self.weak_transform(image, instance, sample_rng(self.seed, index, draw, WEAK_STREAM))
        strong = [
            self.strong_transform(image, instance, sample_rng(self.seed, index, draw, STRONG_STREAM + 100 * view))
            for view in range(self.strong_views)
        ]  # fmt: skip
        weak_to_strong = [
            view_to_view_heatmap_matrix(
                weak.crop_to_image, s.crop_to_image, self.input_size, self.heatmap_size
            )
            for s in strong
        ]
        return UnlabeledSample(
            weak=normalize_image(weak.crop, self.normalization),
            strong=torch.stack([normalize_image(s.crop, self.normalization) for s in strong]),
            weak_to_strong=np.stack(weak_to_strong),
            flipped=np.array([weak.flipped != s.flipped for s in strong], dtype=bool),
            strong_crop_to_image=np.stack([s.crop_to_image for s in strong]),
            weak_crop_to_image=weak.crop_to_image,
            image_id=instance.image_id,
            ann_id=instance.ann_id,
        )
