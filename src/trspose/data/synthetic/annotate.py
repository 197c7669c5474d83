"""COCO keypoint annotations from the rendered geometry: 2D keypoints, visibility, boxes, areas.

Visibility (see docs/DATASET.md): cast a ray from the camera to each 3D keypoint and look at the first
surface it meets. Keypoints of joints lie inside the body, so "no surface in front" is too strict; instead
* v=2 (visible) when nothing is hit before the keypoint, or the first hit is this person's own skin on a
  bone around the keypoint (elbow: upper or lower arm of the same side) and lies less than 5 cm (face
  points) / 20 cm (joints and MPII's head top, whose own head may hide it) in front of it;
* v=1 (occluded) otherwise: hidden by the person's own body (self-occlusion) or by someone else;
* v=0 with x = y = 0 when the keypoint projects outside the image, and (COCO practice) for the face points
  (nose, eyes, ears) hidden by the person's own head or neck, i.e. the face seen from behind.
People whose visible silhouette is under MIN_AREA pixels or who show fewer than MIN_VISIBLE_KEYPOINTS
visible keypoints keep an annotation with no keypoints (num_keypoints = 0, which COCO evaluation ignores and
trainers skip); people with no visible pixel are dropped.
"""

from __future__ import annotations

import numpy as np

from trspose.data.synthetic.render import RayHits, cast_points
from trspose.data.synthetic.scene import Camera

FACE_DEPTH_TOLERANCE = 0.05  # metres: face keypoints lie on the skin
JOINT_DEPTH_TOLERANCE = 0.20  # metres: joint centres lie 1.4-7.4 cm inside the limb
NUM_FACE_POINTS = 5
MIN_AREA = 400  # pixels of visible silhouette
MIN_VISIBLE_KEYPOINTS = 3


def keypoint_visibility(body, mesh, camera: Camera, keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (n, K, 2) and COCO visibility (n, K) of the generator's world points (n, K, 3), K the
    ``body.POINT_NAMES``."""
    n, num_keypoints = keypoints.shape[:2]
    points = keypoints.reshape(-1, 3)
    pixels, depth = camera.project(points)
    fraction, face = cast_points(mesh, camera, points)
    owner = np.repeat(np.arange(n), num_keypoints)
    index = np.tile(np.arange(num_keypoints), n)
    hit_person = np.where(face >= 0, face // body.num_faces, -1)
    hit_bone = body.face_bone[np.clip(face, 0, None) % body.num_faces]
    own_part = (hit_person == owner) & body.keypoint_bone_ok[index, hit_bone]
    in_front = (1 - np.minimum(fraction, 1.0)) * np.linalg.norm(points - camera.centre, axis=1)
    tolerance = np.where(body.skin_point[index], FACE_DEPTH_TOLERANCE, JOINT_DEPTH_TOLERANCE)
    visible = (face < 0) | (fraction >= 1.0) | (own_part & (in_front < tolerance))
    inside = (pixels[:, 0] >= 0) & (pixels[:, 0] < camera.width) & (pixels[:, 1] >= 0)
    inside &= (pixels[:, 1] < camera.height) & (depth > 0)
    own_head = (hit_person == owner) & body.head_bone[hit_bone]
    face_from_behind = (index < NUM_FACE_POINTS) & ~visible & own_head
    flags = np.where(inside & ~face_from_behind, np.where(visible, 2, 1), 0)
    return pixels.reshape(n, num_keypoints, 2), flags.reshape(n, num_keypoints)


def person_annotations(
    hits: RayHits, num_faces: int, pixels: np.ndarray, flags: np.ndarray, extras: list[dict]
) -> list[dict]:
    """COCO annotation dicts (without ids) for the people of one image; see the module docstring."""
    owner = np.where(hits.face >= 0, hits.face // num_faces, -1)
    annotations = []
    for person, extra in enumerate(extras):
        ys, xs = np.nonzero(owner == person)
        if len(xs) == 0:
            continue
        keypoints = np.concatenate([pixels[person], flags[person][:, None]], 1)
        keypoints[flags[person] == 0] = 0
        box = _box(xs, ys, keypoints, owner.shape)
        ignored = len(xs) < MIN_AREA or int((flags[person] == 2).sum()) < MIN_VISIBLE_KEYPOINTS
        if ignored:
            keypoints[:] = 0
        annotations.append({
            "bbox": [round(float(v), 2) for v in box],
            "area": float(len(xs)),
            "num_keypoints": int((keypoints[:, 2] > 0).sum()),
            "keypoints": [round(float(v), 2) if i % 3 != 2 else int(v) for i, v in enumerate(keypoints.reshape(-1))],
            "iscrowd": 0,
            "synthetic": {**extra, "ignored": bool(ignored)},
        })  # fmt: skip
    return annotations


def _box(xs: np.ndarray, ys: np.ndarray, keypoints: np.ndarray, shape: tuple[int, int]) -> list[float]:
    """(x, y, w, h) of the visible silhouette, grown to contain the visible keypoints (clipped to the image)."""
    visible = keypoints[keypoints[:, 2] == 2, :2]
    x0 = min([float(xs.min())] + list(visible[:, 0]))
    y0 = min([float(ys.min())] + list(visible[:, 1]))
    x1 = max([float(xs.max() + 1)] + list(visible[:, 0] + 1))
    y1 = max([float(ys.max() + 1)] + list(visible[:, 1] + 1))
    x0, y0 = max(x0, 0.0), max(y0, 0.0)
    x1, y1 = min(x1, float(shape[1])), min(y1, float(shape[0]))
    return [x0, y0, x1 - x0, y1 - y0]
