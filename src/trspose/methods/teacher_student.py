"""What the methods that learn from pseudo-labels share (mean teacher, dual networks and TRS): their config section
and the ramp of the pseudo-label weight after the supervised burn-in."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from trspose.methods.keypoint_mix import JointCutoutConfig, KeypointMixConfig
from trspose.methods.reviewer import ReviewerConfig


@dataclass
class TeacherStudentConfig:
    """The knobs of the methods that learn from pseudo-labels: mean teacher, dual networks and TRS (the
    ``method`` section of the experiment config adds only the method's name)."""

    burn_in_steps: int = 200
    """Supervised-only steps before the teacher is copied from the student and consistency starts."""
    ema_momentum: float = 0.999
    """Teacher = EMA of the student with this momentum."""
    consistency_weight: float = 1.0
    """Weight of the teacher consistency term after ramp-up."""
    rampup_steps: int = 300
    """Sigmoid ramp-up of the consistency weight after burn-in."""
    confidence_threshold: float = 0.2
    """Pseudo-keypoints whose teacher peak is below this are ignored."""
    confidence_keep_fraction: float = 1.0
    """Of the pseudo-keypoints that pass the threshold, keep only this fraction of each batch's most confident
    (per rank; 1: no such cut). Unlike a fixed threshold, it follows the teacher's calibration."""
    keypoint_mix: bool = True
    """Keypoint-Mix on the student's strong view (TRS only)."""
    keypoint_mix_labeled: bool = False
    """Also apply Keypoint-Mix to labelled crops."""
    mix: KeypointMixConfig = field(default_factory=KeypointMixConfig)
    """Keypoint-Mix probability, count, patch size and source."""
    joint_cutout: JointCutoutConfig = field(default_factory=JointCutoutConfig)
    """Cutout around the teacher's predicted joints on the strong view (TRS and mean teacher; off by default)."""
    reviewer: ReviewerConfig = field(default_factory=ReviewerConfig)
    """The reviewer store (TRS only)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.confidence_keep_fraction <= 1.0:
            raise ValueError("confidence_keep_fraction must be in (0, 1]")
        if not 0.0 <= self.ema_momentum <= 1.0:
            raise ValueError("ema_momentum must be in [0, 1]")


def sigmoid_rampup(step: int, start: int, length: int) -> float:
    """0 before ``start``, then exp(-5 (1 - t)^2) up to 1 over ``length`` steps (Laine & Aila 2017)."""
    if step < start:
        return 0.0
    if length <= 0:
        return 1.0
    t = min(1.0, (step - start) / length)
    return math.exp(-5.0 * (1.0 - t) ** 2)


def consistency_weight(step: int, cfg: TeacherStudentConfig) -> float:
    """Weight of the pseudo-label terms at ``step``: 0 during burn-in, then ramped up to consistency_weight."""
    return cfg.consistency_weight * sigmoid_rampup(step, cfg.burn_in_steps, cfg.rampup_steps)
