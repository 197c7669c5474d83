"""Heatmap losses shared by every method."""

from __future__ import annotations

import torch


def heatmap_mse(prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Keypoint-weighted heatmap MSE (the SimpleBaseline/HRNet ``JointsMSELoss``, with its factor 0.5).

    prediction, target: (B, K, h, w); weight: (B, K), 0 for keypoints that must not count.
    """
    squared = (prediction.float() - target.float()).pow(2).mean(dim=(2, 3))  # (B, K)
    return 0.5 * (squared * weight.float()).mean()


def multi_level_loss(
    heatmaps: torch.Tensor,
    levels: dict[str, torch.Tensor],
    target: torch.Tensor,
    weight: torch.Tensor,
    level_weights: dict[str, float],
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Main-head loss plus Multi-level Feature Learning: every level head gets the same target.

    Returns the total and the per-part values (``main`` and one entry per level name) for logging.
    """
    parts = {"main": heatmap_mse(heatmaps, target, weight)}
    total = parts["main"]
    for name, level_heatmaps in levels.items():
        parts[name] = heatmap_mse(level_heatmaps, target, weight)
        total = total + level_weights.get(name, 1.0) * parts[name]
    return total, parts
