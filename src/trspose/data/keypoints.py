"""The keypoint vocabulary: names, skeleton, left/right flip pairs and OKS sigmas.

Points are always (x, y) in pixels; sizes are always (height, width).
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class KeypointSpec:
    """A keypoint layout (COCO-17 by default)."""

    names: tuple[str, ...]
    skeleton: tuple[tuple[int, int], ...]  # 0-based index pairs
    flip_pairs: tuple[tuple[int, int], ...]  # 0-based (left, right) pairs
    sigmas: tuple[float, ...]  # OKS per-keypoint sigmas

    @property
    def num_keypoints(self) -> int:
        return len(self.names)

    def flip_index(self) -> np.ndarray:
        """Permutation that maps each keypoint to its mirror-image partner."""
        index = np.arange(self.num_keypoints)
        for left, right in self.flip_pairs:
            index[left], index[right] = right, left
        return index

    def coco_category(self) -> dict:
        """The COCO 'person' category entry (skeleton 1-based, as in the COCO files)."""
        return {
            "id": 1,
            "name": "person",
            "supercategory": "person",
            "keypoints": list(self.names),
            "skeleton": [[a + 1, b + 1] for a, b in self.skeleton],
        }


COCO_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip

# COCO's own skeleton (person_keypoints_*.json), converted to 0-based indices.
COCO_SKELETON = tuple(
    (a - 1, b - 1)
    for a, b in [
        (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8),
        (7, 9), (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
    ]
)  # fmt: skip

COCO_FLIP_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))

# Standard COCO OKS sigmas (cocoapi, Ronchi & Perona 2017).
COCO_SIGMAS = (
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
    0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
)  # fmt: skip

COCO17 = KeypointSpec(COCO_NAMES, COCO_SKELETON, COCO_FLIP_PAIRS, COCO_SIGMAS)

SPECS = {"coco17": COCO17}
