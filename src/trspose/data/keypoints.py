"""The keypoint vocabulary: names, skeleton, left/right flip pairs and OKS sigmas.

A layout is a built-in preset (``coco17``, ``mpii16``, ``aic14``, ``crowdpose14``) or a small YAML file (``names``,
optional ``skeleton`` and ``flip_pairs`` as pairs of names or 0-based indices, optional ``sigmas``); left/right pairs
not given are inferred from the names. Points are always (x, y) in pixels; sizes are always (height, width).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from trspose.errors import ConfigError

log = logging.getLogger(__name__)

# OKS sigma of a keypoint whose layout gives none: the mean of COCO's 17 (with one warning per layout)
DEFAULT_SIGMA = 0.072


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

    def to_mapping(self) -> dict:
        """The layout as a spec file holds it (0-based index pairs): what a config and a checkpoint carry."""
        return {"names": list(self.names), "skeleton": [list(p) for p in self.skeleton],
                "flip_pairs": [list(p) for p in self.flip_pairs], "sigmas": list(self.sigmas)}  # fmt: skip

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


_SIDES = (
    re.compile(r"^(?P<side>left|right)[_\-\s]?(?P<base>.+)$"),  # left_wrist, leftWrist
    re.compile(r"^(?P<base>.+?)[_\-\s]?(?P<side>left|right)$"),  # wrist_left
    re.compile(r"^(?P<side>l|r)[_\-\s](?P<base>.+)$"),  # L_wrist, r-paw
    re.compile(r"^(?P<base>.+)[_\-\s](?P<side>l|r)$"),  # wrist_L
)


def infer_flip_pairs(names: tuple[str, ...] | list[str]) -> tuple[tuple[int, int], ...]:
    """(left, right) index pairs of names that differ only in their side: ``left_x``/``right_x``, ``x_left``/
    ``x_right``, ``L_x``/``R_x``, ``x_l``/``x_r``, ``leftX``/``rightX`` (any case). Names with no partner have none."""
    sides: dict[tuple[str, str], int] = {}
    for index, name in enumerate(names):
        for pattern in _SIDES:
            match = pattern.match(name.lower())
            if match:
                side = "left" if match["side"] in ("left", "l") else "right"
                sides.setdefault((side, match["base"].strip("_- ")), index)
                break
    return tuple(sorted((left, sides[("right", base)]) for (side, base), left in sides.items()
                        if side == "left" and ("right", base) in sides))  # fmt: skip


def _pairs(value: Any, names: tuple[str, ...], key: str, where: str) -> tuple[tuple[int, int], ...]:
    """Pairs given by name or 0-based index, checked against ``names``."""
    if not isinstance(value, list):
        raise ConfigError(f"{where}: '{key}' must be a list of pairs, e.g. [[left_paw, right_paw]]")
    pairs = []
    for position, pair in enumerate(value):
        if not (isinstance(pair, list) and len(pair) == 2):
            raise ConfigError(f"{where}: {key}[{position}] must be a pair, got {pair!r}")
        indices = []
        for item in pair:
            if isinstance(item, str) and item in names:
                indices.append(names.index(item))
            elif isinstance(item, int) and not isinstance(item, bool) and 0 <= item < len(names):
                indices.append(item)
            else:
                raise ConfigError(f"{where}: {key}[{position}] names {item!r}, which is not one of the "
                                  f"{len(names)} keypoints (a name or an index 0-{len(names) - 1})")  # fmt: skip
        pairs.append((indices[0], indices[1]))
    return tuple(pairs)


def spec_from_mapping(data: Any, where: str) -> KeypointSpec:
    """A layout from ``{names, skeleton?, flip_pairs?, sigmas?}`` (a spec file's content); errors name ``where``."""
    if not isinstance(data, dict) or "names" not in data:
        raise ConfigError(f"{where}: a keypoint layout needs 'names' (a list), and may give 'skeleton', "
                          "'flip_pairs' and 'sigmas'")  # fmt: skip
    unknown = sorted(set(data) - {"names", "skeleton", "flip_pairs", "sigmas"})
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {unknown}; a layout has names, skeleton, flip_pairs, sigmas"
        )
    names = data["names"]
    if not (isinstance(names, list) and names and all(isinstance(n, str) and n for n in names)):
        raise ConfigError(f"{where}: 'names' must be a non-empty list of keypoint names")
    if len(set(names)) != len(names):
        raise ConfigError(
            f"{where}: keypoint names must be unique; repeated: {sorted({n for n in names if names.count(n) > 1})}"
        )
    names = tuple(names)
    skeleton = _pairs(data.get("skeleton", []), names, "skeleton", where)
    flips = data.get("flip_pairs")
    flip_pairs = infer_flip_pairs(names) if flips is None else _pairs(flips, names, "flip_pairs", where)
    sigmas = data.get("sigmas")
    if sigmas is None:
        log.warning("%s gives no OKS sigmas; AP uses %.3f for every keypoint (add 'sigmas' for your keypoints)",
                    where, DEFAULT_SIGMA)  # fmt: skip
        sigmas = [DEFAULT_SIGMA] * len(names)
    if not (isinstance(sigmas, list) and len(sigmas) == len(names)
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in sigmas)):  # fmt: skip
        raise ConfigError(f"{where}: 'sigmas' must be {len(names)} positive numbers, one per keypoint")
    return KeypointSpec(names, skeleton, flip_pairs, tuple(float(v) for v in sigmas))


# MPII (Andriluka et al. 2014) in its annotation order; AI Challenger (Wu et al. 2017) and CrowdPose (Li et al.
# 2019) in theirs (CrowdPose's own files name the top of the head "head"). Sigmas as their benchmarks and MMPose use them (MPII's adapted from COCO, AIC's from its
# evaluation code); skeletons as MMPose draws them.
MPII16 = spec_from_mapping({
    "names": ["right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "pelvis", "thorax",
              "upper_neck", "head_top", "right_wrist", "right_elbow", "right_shoulder", "left_shoulder",
              "left_elbow", "left_wrist"],
    "skeleton": [[0, 1], [1, 2], [2, 6], [6, 3], [3, 4], [4, 5], [6, 7], [7, 8], [8, 9], [8, 12], [12, 11], [11, 10],
                 [8, 13], [13, 14], [14, 15]],
    "sigmas": [0.089, 0.083, 0.107, 0.107, 0.083, 0.089, 0.026, 0.026, 0.026, 0.026, 0.062, 0.072, 0.179, 0.179,
               0.072, 0.062],
}, "the mpii16 preset")  # fmt: skip
AIC14 = spec_from_mapping({
    "names": ["right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow", "left_wrist",
              "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "head_top", "neck"],
    "skeleton": [[2, 1], [1, 0], [0, 13], [13, 3], [3, 4], [4, 5], [8, 7], [7, 6], [6, 9], [9, 10], [10, 11],
                 [12, 13], [0, 6], [3, 9]],
    "sigmas": [0.01388152, 0.01515228, 0.01057665, 0.01417709, 0.01497891, 0.01402144, 0.03909642, 0.03686941,
               0.01981803, 0.03843971, 0.03412318, 0.02415081, 0.01291456, 0.01236173],
}, "the aic14 preset")  # fmt: skip
CROWDPOSE14 = spec_from_mapping({
    "names": ["left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
              "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "head", "neck"],
    "skeleton": [[10, 8], [8, 6], [11, 9], [9, 7], [6, 7], [0, 6], [1, 7], [0, 1], [0, 2], [1, 3], [2, 4], [3, 5],
                 [12, 13], [1, 13], [0, 13]],
    "sigmas": [0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089, 0.079, 0.079],
}, "the crowdpose14 preset")  # fmt: skip

SPECS = {"coco17": COCO17, "mpii16": MPII16, "aic14": AIC14, "crowdpose14": CROWDPOSE14}
SPEC_FILE_SUFFIXES = (".yaml", ".yml")


def load_layout(value: str) -> KeypointSpec:
    """The layout ``data.keypoints`` names: a preset or a spec file (``.yaml`` / ``.yml``)."""
    if value in SPECS:
        return SPECS[value]
    path = Path(value).expanduser()
    if path.suffix.lower() not in SPEC_FILE_SUFFIXES:
        raise ConfigError(
            f"data.keypoints '{value}' is neither a preset ({', '.join(SPECS)}) nor a .yaml spec file"
        )
    if not path.is_file():
        raise ConfigError(f"data.keypoints: the spec file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: cannot read the keypoint spec ({' '.join(str(error).split())})") from None
    return spec_from_mapping(data, str(path))
