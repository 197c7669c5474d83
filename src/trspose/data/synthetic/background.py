"""Procedural backgrounds: a cluttered backdrop with distractor shapes and a textured ground plane.

Distractors include limb-like capsules in skin and clothing colours, so a detector cannot find people by
colour alone. The ground is the analytic plane z = 0 (ray/plane intersection per pixel), textured with
checks, tiles, planks or noise that fade with distance, with a soft contact shadow under each person.
"""

from __future__ import annotations

import cv2
import numpy as np

from trspose.data.synthetic.appearance import SKIN_TONES, random_colour
from trspose.data.synthetic.scene import Camera

GROUND_TEXTURES = ("checks", "tiles", "planks", "noise")


def backdrop(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0, 1]: gradient, 4-16 distractor shapes and smooth noise."""
    top, bottom = random_colour(rng), random_colour(rng)
    ramp = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    image = np.ascontiguousarray(
        np.broadcast_to(top * (1 - ramp) + bottom * ramp, (height, width, 3)), np.float32
    )
    for _ in range(rng.integers(4, 17)):
        _draw_distractor(rng, image)
    noise = rng.standard_normal((height // 8, width // 8)).astype(np.float32)
    noise = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC) * rng.uniform(0.01, 0.08)
    return np.clip(image + noise[..., None], 0, 1)


def draw_distractors(rng: np.random.Generator, image: np.ndarray, count: int) -> None:
    """Draw `count` flat distractor shapes (e.g. over the ground; people and boxes are painted later)."""
    for _ in range(count):
        _draw_distractor(rng, image)


def _draw_distractor(rng: np.random.Generator, image: np.ndarray) -> None:
    height, width = image.shape[:2]
    kind = rng.choice(["rectangle", "ellipse", "capsule", "polygon", "lines"], p=[0.3, 0.2, 0.25, 0.15, 0.1])
    colour = (
        SKIN_TONES[rng.integers(len(SKIN_TONES))]
        if kind == "capsule" and rng.random() < 0.5
        else random_colour(rng)
    )
    colour = tuple(float(c) for c in colour)
    x, y = int(rng.uniform(0, width)), int(rng.uniform(0, height))
    if kind == "rectangle":
        size = rng.uniform(8, [width / 2, height / 2]).astype(int)
        cv2.rectangle(image, (x, y), (x + size[0], y + size[1]), colour, -1)
    elif kind == "ellipse":
        axes = (int(rng.uniform(4, width / 5)), int(rng.uniform(4, height / 5)))
        cv2.ellipse(image, (x, y), axes, float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_AA)
    elif kind == "capsule":  # limb-like bar
        angle = rng.uniform(0, np.pi)
        length = rng.uniform(15, height / 3)
        end = (int(x + length * np.cos(angle)), int(y + length * np.sin(angle)))
        cv2.line(image, (x, y), end, colour, int(rng.uniform(4, 16)), cv2.LINE_AA)
    elif kind == "polygon":
        points = (np.array([x, y]) + rng.normal(0, width / 10, (rng.integers(3, 7), 2))).astype(np.int32)
        cv2.fillPoly(image, [points], colour, cv2.LINE_AA)
    else:
        for _ in range(rng.integers(2, 6)):
            end = (int(rng.uniform(0, width)), int(rng.uniform(0, height)))
            cv2.line(image, (x, y), end, colour, int(rng.integers(1, 4)), cv2.LINE_AA)


def draw_ground(
    rng: np.random.Generator, image: np.ndarray, camera: Camera, free: np.ndarray, footprints: list[tuple]
) -> None:
    """Paint the ground plane z = 0 into `image` where `free` (no person hit) and the ray goes down.

    The ground is shaded at half resolution and upsampled: 4x cheaper, and it softens texture aliasing.
    """
    height, width = free.shape
    k, rotation, eye = camera.intrinsics, camera.rotation.astype(np.float32), camera.centre
    column = (np.arange(0, width, 2, dtype=np.float32) + 1.0 - k[0, 2]) / k[0, 0]
    row = (np.arange(0, height, 2, dtype=np.float32) + 1.0 - k[1, 2]) / k[1, 1]
    # world direction of the ray through pixel (x, y): column[x] * R[0] + row[y] * R[1] + R[2]
    direction = row[:, None, None] * rotation[1] + column[None, :, None] * rotation[0] + rotation[2]
    t = -eye[2] / np.minimum(direction[..., 2], -1e-4)  # (h, w) distance along the ray to the ground
    points = eye[:2] + t[..., None] * direction[..., :2]
    pattern = _ground_pattern(rng, points.reshape(-1, 2)).reshape(t.shape)[..., None]
    first, second = random_colour(rng), random_colour(rng)
    fade = np.exp(-t / rng.uniform(15, 60))[..., None]
    colour = (first * pattern + second * (1 - pattern)) * fade + (1 - fade) * (first + second) / 2
    for centre, radius in footprints:
        distance2 = ((points - centre) ** 2).sum(-1) / (radius**2 + 1e-6)
        colour *= 1 - 0.45 * np.exp(-distance2)[..., None]
    colour = cv2.resize(colour.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    full_column = (np.arange(width, dtype=np.float32) + 0.5 - k[0, 2]) / k[0, 0]
    full_row = (np.arange(height, dtype=np.float32) + 0.5 - k[1, 2]) / k[1, 1]
    down = full_row[:, None] * rotation[1, 2] + full_column[None, :] * rotation[0, 2] + rotation[2, 2] < -1e-3
    mask = down & free
    image[mask] = np.clip(colour[mask], 0, 1)


def _ground_pattern(rng: np.random.Generator, points: np.ndarray) -> np.ndarray:
    """(N,) values in [0, 1] of a random ground texture at ground points (N, 2) in metres."""
    kind = GROUND_TEXTURES[rng.integers(len(GROUND_TEXTURES))]
    scale = rng.uniform(0.2, 1.5)
    cells = np.floor(points / scale)
    if kind == "checks":
        return ((cells[:, 0] + cells[:, 1]) % 2).astype(np.float32)
    if kind == "tiles":
        grout = np.minimum(*(np.abs(points / scale - np.round(points / scale)).T)) < 0.04
        return 1.0 - grout.astype(np.float32) * 0.8
    if kind == "planks":
        return (
            0.5 + 0.5 * np.sin(cells[:, 0] * 12.9898 + np.floor(points[:, 1] / (4 * scale)) * 78.233)
        ).astype(np.float32)
    waves = rng.normal(size=(3, 2)) * 3
    return (0.5 + np.sin(points @ waves.T).sum(1) / 6).astype(np.float32)
