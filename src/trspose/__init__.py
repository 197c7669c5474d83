"""trspose: semi-supervised 2D human pose estimation (Teacher-Reviewer-Student and baselines)."""

__version__ = "0.1.0"
