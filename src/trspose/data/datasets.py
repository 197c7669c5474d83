"""The labelled top-down dataset and its typed batch.

Augmentation is a pure function of (seed, index, draw): the training loaders pass each sample's global
position as the draw (``trspose.engine.loaders``), so resuming from a checkpoint reproduces the same crops,
whatever the number of (persistent) DataLoader workers, which hold copies of the dataset and share no state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import numpy as np
import torch

from trspose.data.coco import PersonInstance, load_image
from trspose.data.codec import HeatmapCodec
from trspose.data.keypoints import KeypointSpec
from trspose.data.normalization import IMAGENET, Normalization
from trspose.data.transforms import TopDownTransform

if TYPE_CHECKING:
    from typing_extensions import Self


def normalize_image(crop: np.ndarray, normalization: Normalization = IMAGENET) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32, ``(pixel / 255 - mean) / std`` per channel."""
    mean, std = (torch.tensor(v, dtype=torch.float32).view(3, 1, 1) for v in normalization)
    image = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).float() / 255.0  # (3, H, W)
    return (image - mean) / std


def denormalize(images: torch.Tensor, normalization: Normalization = IMAGENET) -> np.ndarray:
    """Inverse of :func:`normalize_image`: (3, H, W) or (B, 3, H, W) -> (H, W, 3) or (B, H, W, 3) uint8."""
    images = images.detach().float().cpu()
    mean, std = (torch.tensor(v, dtype=torch.float32).view(3, 1, 1) for v in normalization)
    pixels = ((images * std + mean) * 255.0).round().clamp(0, 255).to(torch.uint8)
    return pixels.movedim(-3, -1).numpy()


class BatchMixin:
    """``.to(device)`` and ``pin_memory()`` for dataclasses whose fields are all tensors."""

    def _names(self) -> list[str]:
        return [f.name for f in fields(self)]  # type: ignore[arg-type]  # every subclass is a dataclass

    def to(self, device: torch.device | str, non_blocking: bool = True) -> Self:
        values = {name: getattr(self, name).to(device, non_blocking=non_blocking) for name in self._names()}
        return type(self)(**values)

    def pin_memory(self) -> Self:
        # DataLoader(pin_memory=True) calls this on custom batch types.
        return type(self)(**{name: getattr(self, name).pin_memory() for name in self._names()})

    def __len__(self) -> int:
        return int(getattr(self, self._names()[0]).shape[0])


@dataclass
class PoseSample:
    """One labelled crop and its targets (numpy / tensors, picklable for worker processes)."""

    image: torch.Tensor  # (3, H, W) float32 normalised
    heatmaps: np.ndarray  # (K, h, w) float32
    target_weight: np.ndarray  # (K,) float32
    keypoints: np.ndarray  # (K, 3) float32 crop px
    crop_to_image: np.ndarray  # (2, 3) float32
    image_id: int
    ann_id: int
    box_score: float


@dataclass
class PoseBatch(BatchMixin):
    """A batch of labelled crops."""

    images: torch.Tensor  # (B, 3, H, W) float32 normalised
    heatmaps: torch.Tensor  # (B, K, h, w) float32
    target_weight: torch.Tensor  # (B, K) float32
    keypoints: torch.Tensor  # (B, K, 3) float32 crop px
    crop_to_image: torch.Tensor  # (B, 2, 3) float32 crop px -> image px
    image_id: torch.Tensor  # (B,) long
    ann_id: torch.Tensor  # (B,) long
    box_score: torch.Tensor  # (B,) float32


def collate_pose(samples: Sequence[PoseSample]) -> PoseBatch:
    """Stack :class:`PoseSample` s into a :class:`PoseBatch` (the DataLoader ``collate_fn``)."""
    return PoseBatch(
        images=torch.stack([s.image for s in samples]),
        heatmaps=torch.from_numpy(np.stack([s.heatmaps for s in samples])),
        target_weight=torch.from_numpy(np.stack([s.target_weight for s in samples])),
        keypoints=torch.from_numpy(np.stack([s.keypoints for s in samples])),
        crop_to_image=torch.from_numpy(np.stack([s.crop_to_image for s in samples]).astype(np.float32)),
        image_id=torch.tensor([s.image_id for s in samples], dtype=torch.long),
        ann_id=torch.tensor([s.ann_id for s in samples], dtype=torch.long),
        box_score=torch.tensor([s.box_score for s in samples], dtype=torch.float32),
    )


def sample_rng(seed: int, index: int, draw: int = 0, stream: int = 0) -> np.random.Generator:
    """The generator for one sample: independent streams per (seed, index, draw, stream)."""
    # The 0 is where an epoch number was: kept so every sample's augmentation, and so every result, is unchanged.
    return np.random.default_rng([int(seed), 0, int(index), int(draw), int(stream)])


def split_key(key: int | tuple[int, int]) -> tuple[int, int]:
    """Dataset keys are an index or (index, draw); ``draw`` separates repeats of one index in an
    epoch (labelled indices drawn with replacement) so they get different augmentations."""
    if isinstance(key, tuple):
        return int(key[0]), int(key[1])
    return int(key), 0


class TopDownDataset(torch.utils.data.Dataset):
    """Labelled person crops with heatmap targets; deterministic per (seed, index, draw)."""

    def __init__(
        self,
        instances: Sequence[PersonInstance],
        spec: KeypointSpec,
        codec: HeatmapCodec,
        transform: TopDownTransform,
        seed: int = 0,
        normalization: Normalization = IMAGENET,
    ) -> None:
        self.instances = list(instances)
        self.spec = spec
        self.codec = codec
        self.transform = transform
        self.normalization = normalization
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.instances)

    def __getitem__(self, key: int | tuple[int, int]) -> PoseSample:
        index, draw = split_key(key)
        instance = self.instances[index]
        rng = sample_rng(self.seed, index, draw)
        crop, keypoints, crop_to_image, _ = self.transform(load_image(instance.image_path), instance, rng)
        heatmaps, target_weight = self.codec.encode(keypoints)
        return PoseSample(
            image=normalize_image(crop, self.normalization),
            heatmaps=heatmaps,
            target_weight=target_weight,
            keypoints=keypoints,
            crop_to_image=crop_to_image,
            image_id=instance.image_id,
            ann_id=instance.ann_id,
            box_score=float(instance.box_score),
        )
