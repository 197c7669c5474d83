"""Pseudo-targets for the student's strong view from a teacher's (or reviewer's) weak-view heatmaps."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trspose.data.codec import argmax_heatmaps
from trspose.data.geometry import warp_heatmaps


@dataclass
class PseudoTarget:
    heatmaps: torch.Tensor  # (B, K, h, w) in the strong view
    weight: torch.Tensor  # (B, K) 1 where the keypoint is trusted
    confidence: torch.Tensor  # (B, K) peak value in the weak view
    peaks: torch.Tensor  # (B, K, 2) argmax location in the strong view, heatmap pixels (x, y)


def make_pseudo_target(
    weak_heatmaps: torch.Tensor,
    weak_to_strong: torch.Tensor,
    flipped: torch.Tensor,
    flip_index,
    threshold: float,
    keep_fraction: float = 1.0,
) -> PseudoTarget:
    """Warp weak-view heatmaps (B, K, h, w) into the strong view; keep keypoints whose weak peak >= threshold and
    whose warped peak is still inside the strong view (a keypoint moved out of the crop is not a target). With
    ``weak_to_strong`` and ``flipped`` for B * V strong views (V per person, person by person), each person's
    heatmaps are warped into each of its V views: the target has B * V rows.

    ``keep_fraction`` < 1 also drops all but the most confident ``keep_fraction`` of the batch's kept keypoints
    (ties at the cut are kept, so slightly more can stay): a cut that follows the teacher's calibration, where a
    fixed threshold can keep everything or nothing."""
    views = weak_to_strong.shape[0] // max(weak_heatmaps.shape[0], 1)
    if views * weak_heatmaps.shape[0] != weak_to_strong.shape[0]:
        raise ValueError(f"{weak_to_strong.shape[0]} strong views for {weak_heatmaps.shape[0]} weak views")
    if views > 1:
        weak_heatmaps = weak_heatmaps.repeat_interleave(views, dim=0)
    _, weak_confidence = argmax_heatmaps(weak_heatmaps)
    confidence = _permute(weak_confidence, flipped, flip_index)  # (B, K) in the strong view's keypoint order
    strong = warp_heatmaps(weak_heatmaps.float(), weak_to_strong, flip_index, flipped)  # (B, K, h, w)
    peaks, warped_peak = argmax_heatmaps(strong)
    # a keypoint whose peak left the crop keeps only a tail of its Gaussian: its warped maximum collapses
    inside = warped_peak >= 0.5 * confidence
    weight = (confidence >= threshold) & inside
    if keep_fraction < 1.0 and weight.any():
        cutoff = torch.quantile(confidence[weight].float(), 1.0 - keep_fraction)
        weight &= confidence >= cutoff
    weight = weight.float()
    return PseudoTarget(heatmaps=strong, weight=weight, confidence=confidence, peaks=peaks)


def _permute(per_keypoint: torch.Tensor, flipped: torch.Tensor, flip_index) -> torch.Tensor:
    """Reorder (B, K) values like warp_heatmaps reorders channels of flipped samples."""
    if flip_index is None:
        return per_keypoint
    index = torch.as_tensor(flip_index, device=per_keypoint.device, dtype=torch.long)
    return torch.where(flipped[:, None].bool(), per_keypoint[:, index], per_keypoint)


def peaks_agree(a: PseudoTarget, b: PseudoTarget, agreement_px: float) -> torch.Tensor:
    """(B, K) True where the two targets' peaks lie within ``agreement_px`` heatmap pixels of each other."""
    return (a.peaks - b.peaks).norm(dim=-1) <= agreement_px


def fuse_targets(
    teacher: PseudoTarget, reviewer: PseudoTarget, mode: str, agreement_px: float
) -> tuple[PseudoTarget, torch.Tensor]:
    """One target per keypoint from teacher and reviewer.

    'agreement': where both peaks lie within ``agreement_px`` average the heatmaps; where they disagree keep the
    more confident one (and require it to pass its own threshold). 'confidence': always the more confident one.
    Returns the fused target and the (B, K) agreement mask (for logging).
    """
    agree = peaks_agree(teacher, reviewer, agreement_px)
    reviewer_wins = (reviewer.confidence > teacher.confidence)[..., None, None]
    chosen = torch.where(reviewer_wins, reviewer.heatmaps, teacher.heatmaps)
    chosen_weight = torch.where(reviewer_wins[..., 0, 0], reviewer.weight, teacher.weight)
    if mode == "agreement":
        averaged = 0.5 * (teacher.heatmaps + reviewer.heatmaps)
        heatmaps = torch.where(agree[..., None, None], averaged, chosen)
        weight = torch.where(agree, torch.maximum(teacher.weight, reviewer.weight), chosen_weight)
    elif mode == "confidence":
        heatmaps, weight = chosen, chosen_weight
    else:
        raise ValueError(f"fusion mode must be 'agreement' or 'confidence', got {mode!r}")
    confidence = torch.maximum(teacher.confidence, reviewer.confidence)
    peaks = torch.where(reviewer_wins[..., 0], reviewer.peaks, teacher.peaks)
    return PseudoTarget(heatmaps=heatmaps, weight=weight, confidence=confidence, peaks=peaks), agree
