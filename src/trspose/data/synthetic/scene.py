"""Scene layout: who is in the image, posed where, and seen from which camera.

People stand (or sit, lie...) on the ground plane z = 0 with a yaw drawn over the full 360 degrees. They
are kept apart by their footprint: the radius of their vertices' ground projection around its centre, plus
a margin, so two people never intersect. The camera looks at the group from a random side with random
field of view, height, pitch and roll; its distance is chosen so the group roughly fills the frame, and a
zoom factor below 1 pushes body parts out of the image (truncation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from trspose.data.synthetic.poses import axis_rotations

PEOPLE_COUNT_PROBABILITIES = {1: 0.35, 2: 0.30, 3: 0.22, 4: 0.13}
FOOTPRINT_MARGIN = 0.08  # metres of free ground between two people's footprints
LYING_POSES = ("back", "front", "left_side", "right_side")


@dataclass
class Camera:
    """Pinhole camera: world point X maps to K (R X + t); image axes x right, y down."""

    rotation: np.ndarray  # (3, 3) world -> camera
    translation: np.ndarray  # (3,)
    intrinsics: np.ndarray  # (3, 3)
    height: int
    width: int

    @property
    def centre(self) -> np.ndarray:
        return -self.rotation.T @ self.translation

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates (N, 2) and camera depth (N,) of world points (N, 3)."""
        camera = points @ self.rotation.T + self.translation
        depth = camera[:, 2]
        pixels = camera[:, :2] / np.maximum(depth[:, None], 1e-6)
        pixels = pixels * np.diag(self.intrinsics)[:2] + self.intrinsics[:2, 2]
        return pixels, depth


def sample_people_count(rng: np.random.Generator) -> int:
    counts = list(PEOPLE_COUNT_PROBABILITIES)
    return int(rng.choice(counts, p=list(PEOPLE_COUNT_PROBABILITIES.values())))


def body_orientation(rng: np.random.Generator, mode: str) -> tuple[np.ndarray, float]:
    """(3, 3) rigid rotation of a body (lying poses tipped over, then a yaw in [0, 360)) and the yaw."""
    yaw = rng.uniform(0.0, 360.0)
    tilt = np.eye(3)
    if mode == "lying":
        pose = LYING_POSES[rng.integers(len(LYING_POSES))]
        axis, angle = {"back": ((1, 0, 0), 90), "front": ((1, 0, 0), -90)}.get(pose, ((0, 1, 0), 90))
        angle = -angle if pose == "right_side" else angle
        tilt = axis_rotations(np.array(axis, float), np.array([angle]))[0]
    return axis_rotations(np.array([0.0, 0.0, 1.0]), np.array([yaw]))[0] @ tilt, yaw


def place_on_ground(
    rng: np.random.Generator, vertices: list[np.ndarray], spread: float
) -> list[np.ndarray | None]:
    """(3,) translation per body (feet on z = 0, footprints apart), or None when no free spot was found."""
    placed: list[tuple[np.ndarray, float]] = []
    offsets: list[np.ndarray | None] = []
    for body in vertices:
        centre = 0.5 * (body[:, :2].min(0) + body[:, :2].max(0))
        radius = float(np.linalg.norm(body[:, :2] - centre, axis=1).max())
        offsets.append(None)
        for _ in range(40):
            spot = np.array([rng.uniform(-spread, spread), rng.uniform(-0.6 * spread, 1.4 * spread)])
            if not placed:
                spot = np.zeros(2)
            if all(np.linalg.norm(spot - c) > radius + r + FOOTPRINT_MARGIN for c, r in placed):
                placed.append((spot, radius))
                xy = spot - centre
                offsets[-1] = np.array([xy[0], xy[1], -body[:, 2].min()])
                break
    return offsets


def look_at(eye: np.ndarray, target: np.ndarray, roll_degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """World -> camera rotation and translation for a camera at `eye` looking at `target` (Z up)."""
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, np.array([0.0, 0.0, 1.0]))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rotation = np.stack([right, down, forward])
    rotation = axis_rotations(np.array([0.0, 0.0, 1.0]), np.array([roll_degrees]))[0] @ rotation
    return rotation, -rotation @ eye


def sample_camera(rng: np.random.Generator, points: np.ndarray, height: int, width: int) -> Camera:
    """A camera that frames `points` (N, 3): FOV 35-70 deg, eye height 0.3-3.5 m, roll +-8 deg, zoom 0.55-1.15."""
    fov = math.radians(rng.uniform(35, 70))
    focal = 0.5 * width / math.tan(fov / 2)
    intrinsics = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1.0]])
    low, high = points.min(0), points.max(0)
    centre = 0.5 * (low + high)
    half_angle = min(math.atan(0.5 * width / focal), math.atan(0.5 * height / focal))
    radius = 0.5 * float(np.linalg.norm(high - low))
    distance = max(radius / math.sin(half_angle) * rng.uniform(0.55, 1.15), radius + 0.5)
    azimuth = -math.pi / 2 + rng.uniform(-0.7, 0.7)
    eye_height = rng.uniform(0.3, 3.5)
    ground = math.sqrt(max(distance**2 - (eye_height - centre[2]) ** 2, 1.0))
    eye = centre + np.array([ground * math.cos(azimuth), ground * math.sin(azimuth), 0.0])
    eye[2] = eye_height
    target = centre + rng.normal(0, 0.15 * radius, 3)
    rotation, translation = look_at(eye, target, rng.uniform(-8, 8))
    return Camera(rotation, translation, intrinsics, height, width)
