"""The per-person memory reviewer (``method.reviewer.policy: memory``): historical knowledge kept per unlabelled
person rather than as past networks.

For every unlabelled person (by annotation id) and keypoint it keeps the most confident pseudo-keypoint the teacher
has ever produced, as a place in image pixels and its peak value. Places are stored in the person's own left/right
order, whatever the view's mirroring: a mirrored crop swaps left and right channels (the labelled pipeline's
convention), so a channel is mapped to the keypoint it stands for on the way in and back on the way out. When the
person is seen again, the remembered keypoints are drawn as Gaussian targets in each of its strong views, and the
student learns from them where the memory is more confident than the current teacher.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trspose.data.codec import HeatmapCodec, argmax_heatmaps
from trspose.methods.pseudo_labels import PseudoTarget


@dataclass
class PeopleViews:
    """Who the people of a batch are and where their views lie in their images (``UnlabeledBatch`` fields)."""

    ann_id: torch.Tensor  # (B,) long
    weak_crop_to_image: torch.Tensor  # (B, 2, 3) weak crop px -> image px
    strong_crop_to_image: torch.Tensor  # (B * V, 2, 3) strong crop px -> image px


def crop_to_image_points(points: torch.Tensor, crop_to_image: torch.Tensor) -> torch.Tensor:
    """(N, K, 2) crop px -> image px through (N, 2, 3) affines."""
    return points @ crop_to_image[:, :, :2].transpose(1, 2) + crop_to_image[:, None, :, 2]


def image_to_crop_points(points: torch.Tensor, crop_to_image: torch.Tensor) -> torch.Tensor:
    """(N, K, 2) image px -> crop px: the inverse of ``crop_to_image_points``."""
    inverse = torch.linalg.inv(crop_to_image[:, :, :2])  # (N, 2, 2)
    return (points - crop_to_image[:, None, :, 2]) @ inverse.transpose(1, 2)


def mirrored(crop_to_image: torch.Tensor) -> torch.Tensor:
    """(N,) whether each crop is a mirror image of its image region (a negative determinant)."""
    return torch.linalg.det(crop_to_image[:, :, :2]) < 0


def swap_mirrored(values: torch.Tensor, mirror: torch.Tensor, flip_index: torch.Tensor) -> torch.Tensor:
    """(N, K, ...) per-keypoint values with left and right swapped in the rows of mirrored views: view channel order
    <-> the person's own order (the swap is its own inverse)."""
    shape = (-1,) + (1,) * (values.dim() - 1)
    return torch.where(mirror.view(shape), values[:, flip_index], values)


class PseudoLabelMemory:
    """Per person and keypoint, the most confident place ever predicted (image px, the person's own left/right)."""

    def __init__(self, num_keypoints: int) -> None:
        self.num_keypoints = num_keypoints
        self.table: dict[int, torch.Tensor] = {}  # ann_id -> (K, 3) x, y, confidence (-1: nothing yet)

    def __len__(self) -> int:
        return len(self.table)

    def remember(self, ann_ids: torch.Tensor, points: torch.Tensor, confidence: torch.Tensor) -> None:
        """Keep, per keypoint, the new place (B, K, 2) where its confidence (B, K) beats the remembered one."""
        new = torch.cat([points, confidence[..., None]], dim=-1).detach().float().cpu()  # (B, K, 3)
        for ann_id, entry in zip(ann_ids.tolist(), new):
            old = self.table.get(ann_id)
            if old is None:
                self.table[ann_id] = entry.clone()
            else:
                better = entry[:, 2] > old[:, 2]
                old[better] = entry[better]

    def recall(self, ann_ids: torch.Tensor) -> torch.Tensor:
        """(B, K, 3) remembered x, y, confidence of each person (confidence -1 for keypoints never seen)."""
        empty = torch.tensor([0.0, 0.0, -1.0]).expand(self.num_keypoints, 3)
        return torch.stack([self.table.get(a, empty) for a in ann_ids.tolist()]).to(ann_ids.device)

    def state_dict(self) -> dict:
        ids = sorted(self.table)
        values = torch.stack([self.table[i] for i in ids]) if ids else torch.zeros(0, self.num_keypoints, 3)
        return {"ann_ids": torch.tensor(ids, dtype=torch.long), "values": values}

    def load_state_dict(self, state: dict) -> None:
        self.table = {int(a): v.clone() for a, v in zip(state["ann_ids"], state["values"])}


def memory_target(
    memory: PseudoLabelMemory,
    weak_heatmaps: torch.Tensor,
    teacher: PseudoTarget,
    people: PeopleViews,
    codec: HeatmapCodec,
    flip_index: torch.Tensor,
    *,
    threshold: float,
    remember: bool,
) -> PseudoTarget:
    """The memory's target in the strong views (B * V rows), after remembering the teacher's weak-view heatmaps
    (B, K, h, w) when ``remember``. Kept where the memory is more confident than the current teacher (``teacher``:
    its target in the strong views), at least ``threshold``, and inside the strong view. Computed in float32 whatever
    the autocast (bf16 would move places by up to a crop pixel)."""
    with torch.autocast(weak_heatmaps.device.type, enabled=False):
        return _memory_target(
            memory, weak_heatmaps.float(), teacher, people, codec, flip_index, threshold, remember
        )


def _memory_target(
    memory: PseudoLabelMemory, weak_heatmaps: torch.Tensor, teacher: PseudoTarget, people: PeopleViews,
    codec: HeatmapCodec, flip_index: torch.Tensor, threshold: float, remember: bool,
) -> PseudoTarget:  # fmt: skip
    people = PeopleViews(
        people.ann_id, people.weak_crop_to_image.float(), people.strong_crop_to_image.float()
    )
    peaks, confidence = argmax_heatmaps(weak_heatmaps)  # weak heatmap px, weak view channel order
    image_points = crop_to_image_points(codec.heatmap_to_input(peaks), people.weak_crop_to_image)
    weak_mirror = mirrored(people.weak_crop_to_image)
    if remember:
        memory.remember(people.ann_id, swap_mirrored(image_points, weak_mirror, flip_index),
                        swap_mirrored(confidence, weak_mirror, flip_index))  # fmt: skip
    views = people.strong_crop_to_image.shape[0] // max(len(people.ann_id), 1)
    known = memory.recall(people.ann_id).repeat_interleave(views, dim=0)  # (B * V, K, 3), own order
    strong_mirror = mirrored(people.strong_crop_to_image)
    known = swap_mirrored(known, strong_mirror, flip_index)  # strong view channel order
    centers = codec.input_to_heatmap_points(image_to_crop_points(known[..., :2], people.strong_crop_to_image))
    heatmaps, inside = codec.gaussians(centers)
    remembered = known[..., 2]
    weight = inside & (remembered >= threshold) & (remembered > teacher.confidence.to(remembered.dtype))
    return PseudoTarget(
        heatmaps=heatmaps, weight=weight.float(), confidence=remembered.clamp(min=0.0), peaks=centers
    )
