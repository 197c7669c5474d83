"""The anny body model, built once per process, plus the per-vertex tables the generator needs.

World frame of the rest pose (anny, as measured when this generator was written): metres, Z up, the person faces -Y, the
person's left is +X. The model is float32 on the default ``anny`` topology (13,718 vertices, 27,420 triangles).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trspose.data.keypoints import COCO17
from trspose.paths import configure_body_model_cache

# The points the generator computes for every person: COCO's 17 (anny's keypoint regressor), then the four that
# MPII's layout adds, from the posed skeleton and skin: the crown of the head, the top of the neck (anny's last neck
# bone starts level with the chin), the base of the neck (its first neck bone, level with the top of the sternum) and
# the midpoint of the hips.
EXTRA_POINTS = ("head_top", "upper_neck", "thorax", "pelvis")
POINT_NAMES = (*COCO17.names, *EXTRA_POINTS)
# On the skin, not inside. Not head_top: seen from below, the crown hides behind the forehead, and MPII labels it
# visible unless something else hides it, so like a joint it is visible when its own head is the first surface.
SKIN_POINTS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")
CROWN_DEPTH = (
    0.005  # metres: head_top is the mean of the head's vertices this close to its top in the rest pose
)

# Bones whose skin may legitimately be the first surface a camera ray meets on its way to a keypoint
# (the keypoints of joints lie 1.4-7.4 cm inside the body). Matched as name prefixes.
KEYPOINT_BONES: dict[str, tuple[str, ...]] = {
    "nose": ("head", "neck03"),
    "left_eye": ("head", "eye."),
    "right_eye": ("head", "eye."),
    "left_ear": ("head",),
    "right_ear": ("head",),
    "left_shoulder": (
        "clavicle.L",
        "shoulder01.L",
        "upperarm01.L",
        "upperarm02.L",
        "spine01",
        "spine02",
        "neck01",
    ),
    "right_shoulder": (
        "clavicle.R",
        "shoulder01.R",
        "upperarm01.R",
        "upperarm02.R",
        "spine01",
        "spine02",
        "neck01",
    ),
    "left_elbow": ("upperarm01.L", "upperarm02.L", "lowerarm01.L", "lowerarm02.L"),
    "right_elbow": ("upperarm01.R", "upperarm02.R", "lowerarm01.R", "lowerarm02.R"),
    "left_wrist": ("lowerarm01.L", "lowerarm02.L", "wrist.L", "metacarpal", "finger"),
    "right_wrist": ("lowerarm01.R", "lowerarm02.R", "wrist.R", "metacarpal", "finger"),
    "left_hip": ("pelvis.L", "upperleg01.L", "upperleg02.L", "root", "spine05", "spine04"),
    "right_hip": ("pelvis.R", "upperleg01.R", "upperleg02.R", "root", "spine05", "spine04"),
    "left_knee": ("upperleg01.L", "upperleg02.L", "lowerleg01.L", "lowerleg02.L"),
    "right_knee": ("upperleg01.R", "upperleg02.R", "lowerleg01.R", "lowerleg02.R"),
    "left_ankle": ("lowerleg01.L", "lowerleg02.L", "foot.L", "toe"),
    "right_ankle": ("lowerleg01.R", "lowerleg02.R", "foot.R", "toe"),
    "head_top": ("head",),
    "upper_neck": ("head", "neck"),
    "thorax": ("neck01", "spine01", "spine02", "clavicle"),
    "pelvis": ("root", "pelvis", "spine05", "spine04", "upperleg01"),
}

# Clothing regions, one label per vertex (from the dominant skinning bone; a hair cap on the head).
REGIONS = ("skin", "hair", "shirt", "upper_sleeve", "lower_sleeve", "thigh", "shin", "shoes", "eyes")
_REGION_OF_BONE = (
    (("spine", "clavicle", "shoulder01", "neck01"), "shirt"),
    (("upperarm",), "upper_sleeve"),
    (("lowerarm",), "lower_sleeve"),
    (("upperleg", "pelvis", "root"), "thigh"),
    (("lowerleg",), "shin"),
    (("foot", "toe"), "shoes"),
    (("eye",), "eyes"),
)
HEAD_BONE_PREFIXES = ("head", "neck", "eye")  # skin that hides the face of a person seen from behind
PHENOTYPE_POOL_SIZE = (
    8192  # shapes pre-sampled once with a fixed seed; people pick from it with their own RNG
)


@dataclass
class BodyModel:
    """The anny model and the static tables derived from it (all numpy unless noted)."""

    model: object  # anny.Anny, float32, eval mode
    regressor: object  # anny.KeypointsRegressor for the 17 COCO keypoints
    faces: np.ndarray  # (F, 3) int32 triangles
    rest_vertices: np.ndarray  # (V, 3) rest pose of the default body, metres
    face_bone: np.ndarray  # (F,) dominant bone index per triangle
    keypoint_bone_ok: np.ndarray  # (len(POINT_NAMES), bones) bool: bone may occlude its own keypoint
    crown_vertices: np.ndarray  # vertex indices whose mean is head_top
    skin_point: np.ndarray  # (len(POINT_NAMES),) bool: the point lies on the skin (SKIN_POINTS)
    head_bone: np.ndarray  # (bones,) bool: head, neck and eye bones
    vertex_region: np.ndarray  # (V,) index into REGIONS
    bone_index: dict[str, int]
    elbow_axis: dict[str, np.ndarray]  # 'L'/'R' -> unit hinge axis in rest world axes
    elbow_rest_angle: dict[str, float]  # radians of flexion already present in the rest A-pose
    phenotypes: np.ndarray  # (PHENOTYPE_POOL_SIZE, 6) gender, age, muscle, weight, height, proportions
    build_seconds: float

    @property
    def num_vertices(self) -> int:
        return len(self.rest_vertices)

    @property
    def num_faces(self) -> int:
        return len(self.faces)

    @property
    def num_bones(self) -> int:
        return len(self.bone_index)


_BODY_MODEL: BodyModel | None = None


def get_body_model() -> BodyModel:
    """The process-wide body model, built on first use (84 s cold, under 1 s from the cache)."""
    global _BODY_MODEL
    if _BODY_MODEL is None:
        _BODY_MODEL = build_body_model()
    return _BODY_MODEL


def build_body_model() -> BodyModel:
    """Build anny (float32, default topology), its COCO regressor and the derived tables; prune the cache."""
    configure_body_model_cache()
    start = time.perf_counter()
    import warp

    warp.config.quiet = True  # type: ignore[attr-defined]  # no banner, no per-module compile messages (older warp)
    warp.config.log_level = getattr(warp, "LOG_ERROR", 40)  # the same for warp >= 1.19
    import anny
    import torch

    # one process builds anny's cache at a time (test workers, data-loader workers, torchrun ranks): another one
    # waits, then reads the cache, and never finds a file half-written or pruned under it
    with _cache_lock():
        model = anny.Anny().to(dtype=torch.float32).eval()
        regressor = anny.KeypointsRegressor.coco(model, labels=list(COCO17.names))
        prune_body_model_cache()
    with torch.no_grad():
        rest = model()
    faces = model.faces.numpy().astype(np.int32)
    weights, indices = model.vertex_bone_weights, model.vertex_bone_indices
    vertex_bone = indices.gather(1, weights.argmax(1, keepdim=True))[:, 0].numpy()
    bone_names = list(model.bone_labels)
    rest_vertices = rest["rest_vertices"][0].numpy()
    axes, angles = _elbow_hinges(rest["rest_bone_poses"][0].numpy(), bone_names)
    return BodyModel(
        model=model,
        regressor=regressor,
        faces=faces,
        rest_vertices=rest_vertices,
        face_bone=vertex_bone[faces[:, 0]],
        keypoint_bone_ok=_keypoint_bone_table(bone_names),
        crown_vertices=_crown(vertex_bone, bone_names, rest_vertices),
        skin_point=np.isin(POINT_NAMES, SKIN_POINTS),
        head_bone=np.array([name.startswith(HEAD_BONE_PREFIXES) for name in bone_names]),
        vertex_region=_vertex_regions(vertex_bone, bone_names, rest_vertices),
        bone_index={name: i for i, name in enumerate(bone_names)},
        elbow_axis=axes,
        elbow_rest_angle=angles,
        phenotypes=_phenotype_pool(model),
        build_seconds=time.perf_counter() - start,
    )


@contextmanager
def _cache_lock() -> Iterator[None]:
    """An exclusive lock on the body model's cache folder (a lock file in it; ``fcntl`` where it exists)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    root = Path(os.environ.get("ANNY_CACHE_DIR", Path.home() / ".cache" / "anny"))
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".trspose-build.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def prune_body_model_cache() -> None:
    """Delete anny's two large intermediate cache files (777 MB); a warm build only reads the compact one."""
    import anny.paths

    root = Path(anny.paths.get_anny_cache_path())
    compact = list(root.rglob("build_compact_model_data_*"))
    if not compact:
        return
    for path in root.rglob("*"):
        if path.is_file() and path.name.startswith(("load_data_", "build_model_data_")):
            path.unlink(missing_ok=True)


def _elbow_hinges(bone_poses: np.ndarray, bone_names: list[str]) -> tuple[dict, dict]:
    """Elbow hinge axis = cross(upper-arm direction, forearm direction) in the rest pose, and the rest angle."""
    axes, angles = {}, {}
    for side in "LR":
        upper = bone_poses[bone_names.index(f"upperarm01.{side}"), :3, 1]
        fore = bone_poses[bone_names.index(f"lowerarm01.{side}"), :3, 1]
        axis = np.cross(upper, fore)
        axes[side] = axis / np.linalg.norm(axis)
        angles[side] = math.acos(float(np.clip(np.dot(upper, fore), -1.0, 1.0)))
    return axes, angles


def _keypoint_bone_table(bone_names: list[str]) -> np.ndarray:
    table = np.zeros((len(POINT_NAMES), len(bone_names)), bool)
    for k, keypoint in enumerate(POINT_NAMES):
        prefixes = KEYPOINT_BONES[keypoint]
        table[k] = [name.startswith(prefixes) for name in bone_names]
    return table


def _crown(vertex_bone: np.ndarray, bone_names: list[str], rest: np.ndarray) -> np.ndarray:
    """The head's vertices within CROWN_DEPTH of its top (Z up) in the rest pose."""
    head = np.flatnonzero(vertex_bone == bone_names.index("head"))
    z = rest[head, 2]
    return head[z > z.max() - CROWN_DEPTH]


def extra_points(body: BodyModel, vertices, bone_poses, keypoints):
    """The EXTRA_POINTS (n, 4, 3) of posed people from anny's output (torch tensors: vertices (n, V, 3), bone poses
    (n, bones, 4, 4)) and their COCO keypoints (n, 17, 3), in the same frame."""
    import torch

    hips = [COCO17.names.index("left_hip"), COCO17.names.index("right_hip")]
    return torch.stack([
        vertices[:, body.crown_vertices].mean(1),
        bone_poses[:, body.bone_index["neck03"], :3, 3],
        bone_poses[:, body.bone_index["neck01"], :3, 3],
        keypoints[:, hips].mean(1),
    ], 1)  # fmt: skip


def _vertex_regions(vertex_bone: np.ndarray, bone_names: list[str], rest: np.ndarray) -> np.ndarray:
    """Clothing region per vertex from its dominant bone, plus a hair cap above the ears."""
    region = np.zeros(len(vertex_bone), np.int32)
    for j, name in enumerate(bone_names):
        for prefixes, label in _REGION_OF_BONE:
            if name.startswith(prefixes):
                region[vertex_bone == j] = REGIONS.index(label)
                break
    head = vertex_bone == bone_names.index("head")
    y, z = rest[:, 1], rest[:, 2]
    top = z[head].max()
    cap = (z > top - 0.10) & ~((y < -0.06) & (z < top - 0.035))
    back = (y > 0.02) & (z > top - 0.21)
    region[head & (cap | back)] = REGIONS.index("hair")
    return region


def _phenotype_pool(model) -> np.ndarray:
    """Pre-sample body shapes (ages 5-85, WHO-calibrated) with a fixed seed, so generation stays deterministic."""
    import torch
    from anny.shape_distribution import SimpleShapeDistribution

    with torch.random.fork_rng():
        torch.manual_seed(20240601)
        age = torch.distributions.Uniform(torch.tensor(5.0), torch.tensor(85.0))
        distribution = SimpleShapeDistribution(model, morphological_age_distribution=age)
        _, values = distribution.sample(PHENOTYPE_POOL_SIZE)
    return np.stack([values[k].float().numpy() for k in model.phenotype_labels], 1).astype(np.float32)
