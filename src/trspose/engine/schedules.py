"""Schedules as pure functions of the step (so that resuming at step s gives exactly the same values)."""

from __future__ import annotations

import math


def learning_rate_factor(
    step: int, *, total_steps: int, warmup_steps: int, schedule: str, milestones: list[float], gamma: float
) -> float:
    """Multiplier of the peak learning rate at optimiser step ``step`` (0-based)."""
    if warmup_steps > 0 and step < warmup_steps:
        # linear warm-up from 1% of the peak, as in the HRNet/MMPose pose configs
        return 0.01 + 0.99 * step / warmup_steps
    if schedule == "cosine":
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    decays = sum(step >= int(m * total_steps) for m in milestones)
    return gamma**decays
