"""One synthetic image end to end: sample people, pose them, place them, render, annotate.

Everything random comes from the `rng` passed in, so an image depends only on (seed, split, index).
Stage timings (process CPU seconds) are accumulated into the `timings` dict under the names
sampling, posing, placing, ray_casting, shading and annotating.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from trspose.data.keypoints import COCO17
from trspose.data.synthetic import annotate, background, objects, poses, render, scene
from trspose.data.synthetic.appearance import person_albedo
from trspose.data.synthetic.body import extra_points
from trspose.data.synthetic.collision import SelfIntersectionTest

MAX_POSE_RETRIES = 2  # resampling rounds for self-intersecting bodies before falling back to standing


@dataclass
class People:
    """Posed bodies in the body frame (before placement)."""

    modes: np.ndarray  # (n,)
    phenotypes: np.ndarray  # (n, 6)
    vertices: np.ndarray  # (n, V, 3)
    keypoints: np.ndarray  # (n, len(body.POINT_NAMES), 3)


@contextmanager
def stage(timings: dict[str, float], name: str) -> Iterator[None]:
    """Add the process CPU time of the block to timings[name]."""
    start = time.process_time()
    yield
    timings[name] = timings.get(name, 0.0) + time.process_time() - start


def pose_people(body, collision: SelfIntersectionTest, rng: np.random.Generator, modes: np.ndarray) -> People:
    """Batched anny forward of n sampled people; risky-mode bodies that self-intersect are resampled."""
    modes = modes.copy()
    phenotypes = body.phenotypes[rng.integers(len(body.phenotypes), size=len(modes))]
    vertices, keypoints = _forward(body, poses.sample_angles(rng, modes), phenotypes)
    for attempt in range(MAX_POSE_RETRIES + 1):
        bad = [i for i, m in enumerate(modes) if m in poses.RISKY_MODES and collision.intersects(vertices[i])]
        if not bad:
            break
        if attempt == MAX_POSE_RETRIES:
            modes[bad] = "standing"
        again = poses.sample_angles(rng, modes[bad])
        vertices[bad], keypoints[bad] = _forward(body, again, phenotypes[bad])
    return People(modes, phenotypes, vertices, keypoints)


def _forward(body, angles: poses.PoseAngles, phenotypes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import torch

    with torch.no_grad():
        output = body.model(
            pose_parameters=torch.from_numpy(poses.pose_matrices(body, angles)),
            phenotype_kwargs=torch.from_numpy(phenotypes),
        )
        keypoints = body.regressor(output)
        keypoints = torch.cat(
            [keypoints, extra_points(body, output["vertices"], output["bone_poses"], keypoints)], 1
        )
    return output["vertices"].numpy(), keypoints.numpy()


def place_people(
    rng: np.random.Generator, people: People
) -> tuple[list[int], list[np.ndarray], list[np.ndarray], list]:
    """World vertices/keypoints of the people that found a free spot on the ground, and their footprints."""
    rotated = []
    for i, mode in enumerate(people.modes):
        rotation, _ = scene.body_orientation(rng, str(mode))
        rotated.append((people.vertices[i] @ rotation.T, people.keypoints[i] @ rotation.T))
    spread = 0.6 * len(rotated) ** 0.5
    offsets = scene.place_on_ground(rng, [v for v, _ in rotated], spread)
    kept, vertices, keypoints, footprints = [], [], [], []
    for i, ((v, k), offset) in enumerate(zip(rotated, offsets)):
        if offset is None:
            continue
        kept.append(i)
        vertices.append((v + offset).astype(np.float32))
        keypoints.append((k + offset).astype(np.float32))
        low, high = vertices[-1][:, :2].min(0), vertices[-1][:, :2].max(0)
        footprints.append((0.5 * (low + high), 0.35 * float(np.linalg.norm(high - low))))
    return kept, vertices, keypoints, footprints


def synthesize_image(
    body,
    collision: SelfIntersectionTest,
    rng: np.random.Generator,
    size: tuple[int, int],
    timings: dict,
    columns: list[int] | None = None,
) -> tuple[np.ndarray, list[dict]]:
    """One (H, W, 3) uint8 BGR image and its COCO annotations (without ids), with the keypoints ``columns`` of
    ``body.POINT_NAMES`` (default: COCO's 17)."""
    height, width = size
    with stage(timings, "sampling"):
        modes = poses.sample_modes(rng, scene.sample_people_count(rng))
    with stage(timings, "posing"):
        people = pose_people(body, collision, rng, modes)
    with stage(timings, "placing"):
        kept, vertices, keypoints, footprints = place_people(rng, people)
        camera = scene.sample_camera(rng, np.concatenate(vertices), height, width)
        group_centre = np.concatenate(vertices).mean(0)
        boxes = objects.sample_objects(rng, camera.centre, group_centre, footprints)
    with stage(timings, "ray_casting"):
        mesh = render.scene_mesh(body, np.concatenate(vertices + boxes), len(kept))
        visible_boxes = [b for b in boxes if not objects.is_parked(b)]
        hits = render.cast_image(mesh, camera, render.pixel_mask(camera, vertices + visible_boxes))
    with stage(timings, "shading"):
        image = _shade(body, rng, camera, hits, vertices, boxes, footprints)
    with stage(timings, "annotating"):
        pixels, flags = annotate.keypoint_visibility(body, mesh, camera, np.stack(keypoints))
        columns = list(range(len(COCO17.names))) if columns is None else columns
        pixels, flags = pixels[:, columns], flags[:, columns]
        extras = [_person_extra(people, i) for i in kept]
        annotations = annotate.person_annotations(hits, body.num_faces, pixels, flags, extras)
    return image, annotations


def _shade(body, rng, camera, hits, vertices, boxes, footprints) -> np.ndarray:
    """Background, ground, distractors, then the shaded people and boxes, then camera effects (BGR)."""
    image = background.backdrop(rng, camera.height, camera.width)
    background.draw_ground(rng, image, camera, hits.face < 0, footprints)
    background.draw_distractors(rng, image, int(rng.integers(0, 5)))
    light = rng.normal(size=3) + [0, 0, 1.5]
    light /= np.linalg.norm(light)
    faces = render.scene_faces(body, len(vertices))
    normals = [render.vertex_normals(v, body.faces) for v in vertices]
    normals += [render.vertex_normals(b, objects.CUBE_FACES) for b in boxes]
    albedo = [person_albedo(rng, body)[0] for _ in vertices] + [objects.object_albedo(rng) for _ in boxes]
    render.shade_hits(image, hits, faces, np.concatenate(normals), np.concatenate(albedo), light)
    rgb = (image * 255).astype(np.uint8)
    return render.degrade(rng, np.ascontiguousarray(rgb[..., ::-1]))


def _person_extra(people: People, i: int) -> dict:
    """Non-COCO fields stored per annotation under "synthetic"."""
    gender, age = people.phenotypes[i, :2]
    return {"pose_mode": str(people.modes[i]), "gender": round(float(gender), 3), "age": round(float(age), 3)}
