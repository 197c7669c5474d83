"""3D distractor objects: boxes (crates, low walls, pillars) standing on the ground.

They are ray-cast together with the people, so they occlude people (and the occluded keypoints get v=1)
exactly like another person would. Every scene holds NUM_OBJECTS boxes so that the persistent BVH keeps a
fixed topology; unused boxes are parked far below the ground where no ray reaches them.
"""

from __future__ import annotations

import numpy as np

from trspose.data.synthetic.poses import axis_rotations

NUM_OBJECTS = 3
OCCLUDER_PROBABILITY = 0.35  # chance that one box stands between the camera and the people
PARKED = np.array([0.0, 0.0, -1.0e5])

# A unit cube with 4 own vertices per side (flat normals), 2 triangles per side.
_SIDES = [((0, 1, 2), 1), ((0, 1, 2), -1), ((1, 2, 0), 1), ((1, 2, 0), -1), ((2, 0, 1), 1), ((2, 0, 1), -1)]


def _unit_cube() -> tuple[np.ndarray, np.ndarray]:
    vertices, faces = [], []
    for (a, b, c), sign in _SIDES:
        for u, v in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
            point = np.zeros(3)
            point[a], point[b], point[c] = sign, u * sign, v
            vertices.append(point * 0.5)
        base = len(vertices) - 4
        faces += [(base, base + 1, base + 2), (base, base + 2, base + 3)]
    return np.array(vertices) + [0, 0, 0.5], np.array(faces, np.int32)


CUBE_VERTICES, CUBE_FACES = _unit_cube()  # (24, 3) with the base at z = 0, (12, 3)


def is_parked(vertices: np.ndarray) -> bool:
    return bool(vertices[0, 2] < -1e4)


def box_vertices(centre_xy: np.ndarray, size: np.ndarray, yaw: float) -> np.ndarray:
    """(24, 3) vertices of a box of `size` (width, depth, height) standing at `centre_xy`, turned by `yaw`."""
    rotation = axis_rotations(np.array([0.0, 0.0, 1.0]), np.array([yaw]))[0]
    return (CUBE_VERTICES * size) @ rotation.T + [centre_xy[0], centre_xy[1], 0.0]


def sample_objects(
    rng: np.random.Generator, eye: np.ndarray, group_centre: np.ndarray, footprints: list[tuple]
) -> list[np.ndarray]:
    """NUM_OBJECTS (24, 3) vertex arrays: maybe an occluder between camera and group, clutter around."""
    boxes = []
    count = rng.integers(0, NUM_OBJECTS + 1)
    occluder = rng.random() < OCCLUDER_PROBABILITY
    for index in range(NUM_OBJECTS):
        size = rng.uniform([0.3, 0.3, 0.3], [1.5, 1.0, 1.4])
        if rng.random() < 0.25:
            size[:2], size[2] = rng.uniform(0.15, 0.4, 2), rng.uniform(1.5, 3.0)  # a pillar
        if index == 0 and occluder:
            spot = eye[:2] + rng.uniform(0.3, 0.8) * (group_centre[:2] - eye[:2]) + rng.normal(0, 0.4, 2)
        else:
            spot = group_centre[:2] + rng.uniform(-4, 4, 2)
        radius = 0.5 * float(np.linalg.norm(size[:2]))
        free = all(np.linalg.norm(spot - c) > radius + r + 0.05 for c, r in footprints)
        clear_of_camera = np.linalg.norm(spot - eye[:2]) > radius + 0.3
        used = index < count or (index == 0 and occluder)
        if used and free and clear_of_camera:
            boxes.append(box_vertices(spot, size, rng.uniform(0, 360)))
        else:
            boxes.append(CUBE_VERTICES * 1e-3 + PARKED)
    return boxes


def object_albedo(rng: np.random.Generator) -> np.ndarray:
    """(24, 3) colours of one box: a random colour with a per-side brightness jitter."""
    from trspose.data.synthetic.appearance import random_colour

    colour = random_colour(rng)
    return np.repeat(colour * rng.uniform(0.8, 1.1, (6, 1)), 4, axis=0).clip(0, 1).astype(np.float32)
