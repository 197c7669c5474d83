"""CPU rendering: warp ray casting of the people, an analytic ground plane, procedural clutter, numpy shading.

All people of an image share one ``wp.Mesh``. Building a BVH costs ~10 ms per person, refitting it after
new vertex positions ~0.5 ms, so we keep one persistent mesh per people count and refit it. The mesh is
first built from a fixed canonical layout, so its BVH (and thus every ray hit) does not depend on which
images a worker rendered before: that keeps the output identical for any worker count.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import cv2
import numpy as np

from trspose.data.synthetic.objects import CUBE_FACES, CUBE_VERTICES, NUM_OBJECTS, PARKED
from trspose.data.synthetic.scene import Camera

_MESHES: dict[int, object] = {}


@dataclass
class RayHits:
    """Per-pixel first hits, (H, W) each: camera z-depth, triangle index (-1: none), barycentrics."""

    depth: np.ndarray
    face: np.ndarray
    u: np.ndarray
    v: np.ndarray


def _kernels():
    """The warp kernels, defined lazily so that importing this module does not import warp."""
    import warp as wp

    global _RAY_KERNEL, _POINT_KERNEL
    if "_RAY_KERNEL" in globals():
        return _RAY_KERNEL, _POINT_KERNEL

    @wp.kernel
    def cast_pixels(mesh: wp.uint64, origin: wp.vec3, cam_to_world: wp.mat33, fx: float, fy: float,
                    cx: float, cy: float, width: int, pixels: wp.array(dtype=int),
                    depth: wp.array(dtype=float), face: wp.array(dtype=int),
                    bary_u: wp.array(dtype=float), bary_v: wp.array(dtype=float)):  # fmt: skip
        tid = wp.tid()
        px = pixels[tid] % width
        py = pixels[tid] // width
        direction = cam_to_world * wp.vec3((float(px) + 0.5 - cx) / fx, (float(py) + 0.5 - cy) / fy, 1.0)
        query = wp.mesh_query_ray(mesh, origin, direction, 1.0e4)  # t is then the camera z-depth
        depth[tid] = 1.0e10
        face[tid] = -1
        if query.result:
            depth[tid] = query.t
            face[tid] = query.face
            bary_u[tid] = query.u
            bary_v[tid] = query.v

    @wp.kernel
    def cast_points(mesh: wp.uint64, origin: wp.vec3, points: wp.array(dtype=wp.vec3),
                    fraction: wp.array(dtype=float), face: wp.array(dtype=int)):  # fmt: skip
        tid = wp.tid()
        query = wp.mesh_query_ray(mesh, origin, points[tid] - origin, 2.0)  # t = 1 at the point
        fraction[tid] = 1.0e10
        face[tid] = -1
        if query.result:
            fraction[tid] = query.t
            face[tid] = query.face

    _RAY_KERNEL, _POINT_KERNEL = cast_pixels, cast_points
    return cast_pixels, cast_points


def scene_faces(body, num_people: int) -> np.ndarray:
    """(num_people * F + NUM_OBJECTS * 12, 3) triangles: the people, then the distractor boxes."""
    people = [body.faces + i * body.num_vertices for i in range(num_people)]
    first = num_people * body.num_vertices
    boxes = [CUBE_FACES + first + j * len(CUBE_VERTICES) for j in range(NUM_OBJECTS)]
    return np.concatenate(people + boxes).astype(np.int32)


def scene_mesh(body, vertices: np.ndarray, num_people: int):
    """The persistent warp mesh for `num_people` bodies and the boxes, refitted to `vertices` (people, boxes)."""
    import warp as wp

    if num_people not in _MESHES:
        people = [body.rest_vertices + [1.5 * i, 0, 0] for i in range(num_people)]
        boxes = [CUBE_VERTICES + [-1.5 * (j + 1), 0, 0] for j in range(NUM_OBJECTS)]
        canonical = np.concatenate(people + boxes)
        points = wp.array(canonical.astype(np.float32), dtype=wp.vec3, device="cpu")
        indices = wp.array(scene_faces(body, num_people).reshape(-1), dtype=wp.int32, device="cpu")
        _MESHES[num_people] = wp.Mesh(points=points, indices=indices)
    mesh = _MESHES[num_people]
    if len(vertices) == num_people * body.num_vertices:  # no boxes given: park them
        vertices = np.concatenate([vertices, np.tile(CUBE_VERTICES * 1e-3 + PARKED, (NUM_OBJECTS, 1))])
    mesh.points.assign(np.ascontiguousarray(vertices, np.float32))
    mesh.refit()
    return mesh


def cast_image(mesh, camera: Camera, pixel_mask: np.ndarray) -> RayHits:
    """Cast one ray per pixel where `pixel_mask` (H, W) is set."""
    import warp as wp

    cast_pixels, _ = _kernels()
    height, width = pixel_mask.shape
    pixels = np.flatnonzero(pixel_mask).astype(np.int32)
    count = max(len(pixels), 1)
    out = [wp.empty(count, dtype=dtype, device="cpu") for dtype in (float, int, float, float)]
    if len(pixels):
        k = camera.intrinsics
        cam_to_world = wp.mat33(*camera.rotation.T.astype(np.float32).reshape(-1))
        wp.launch(cast_pixels, dim=len(pixels), device="cpu", inputs=[
            mesh.id, wp.vec3(*camera.centre.astype(np.float32)), cam_to_world, float(k[0, 0]), float(k[1, 1]),
            float(k[0, 2]), float(k[1, 2]), width, wp.array(pixels, dtype=wp.int32, device="cpu"), *out])  # fmt: skip
    buffers = []
    for array, fill in zip(out, (1e10, -1, 0.0, 0.0)):
        full = np.full(height * width, fill, dtype=np.float32 if fill != -1 else np.int32)
        if len(pixels):
            full[pixels] = array.numpy()
        buffers.append(full.reshape(height, width))
    return RayHits(*buffers)


def cast_points(mesh, camera: Camera, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rays camera -> point: the first hit as a fraction of the way to the point (>1: none) and its face."""
    import warp as wp

    _, kernel = _kernels()
    fraction = wp.empty(len(points), dtype=float, device="cpu")
    face = wp.empty(len(points), dtype=int, device="cpu")
    wp.launch(kernel, dim=len(points), device="cpu", inputs=[
        mesh.id, wp.vec3(*camera.centre.astype(np.float32)),
        wp.array(np.ascontiguousarray(points, np.float32), dtype=wp.vec3, device="cpu"), fraction, face])  # fmt: skip
    return fraction.numpy(), face.numpy()


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) unit area-weighted vertex normals (a sparse vertex x face sum, ~2x faster than bincounts)."""
    import torch

    first = vertices[faces[:, 0]]
    face_normals = np.cross(vertices[faces[:, 1]] - first, vertices[faces[:, 2]] - first)
    normals = (_incidence(faces, len(vertices)) @ torch.from_numpy(face_normals.astype(np.float32))).numpy()
    return normals / (np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12)


_INCIDENCE: dict[tuple[int, int], object] = {}


def _incidence(faces: np.ndarray, num_vertices: int):
    """Sparse (V, F) 0/1 matrix: vertex v is a corner of face f (cached per mesh size)."""
    import torch

    key = (num_vertices, len(faces))
    if key not in _INCIDENCE:
        rows = torch.from_numpy(faces.reshape(-1).astype(np.int64))
        columns = torch.arange(len(faces)).repeat_interleave(3)
        with warnings.catch_warnings():  # "sparse CSR support is in beta", "invariant checks disabled"
            warnings.simplefilter("ignore")
            matrix = torch.sparse_coo_tensor(torch.stack([rows, columns]), torch.ones(3 * len(faces)), key)
            _INCIDENCE[key] = matrix.coalesce().to_sparse_csr()
    return _INCIDENCE[key]


def shade_hits(
    image: np.ndarray,
    hits: RayHits,
    faces: np.ndarray,
    normals: np.ndarray,
    albedo: np.ndarray,
    light: np.ndarray,
) -> None:
    """Lambert + ambient shading of the pixels where a mesh (person or box) was hit, in place.

    `image` is (H, W, 3) float32 RGB in [0, 1]; `faces`, `normals`, `albedo` index the scene mesh."""
    hit = hits.face >= 0
    triangles = faces[hits.face[hit]]
    u, v = hits.u[hit][:, None], hits.v[hit][:, None]
    w = 1 - u - v
    normal = u * normals[triangles[:, 0]] + v * normals[triangles[:, 1]] + w * normals[triangles[:, 2]]
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-12
    colour = u * albedo[triangles[:, 0]] + v * albedo[triangles[:, 1]] + w * albedo[triangles[:, 2]]
    lambert = np.abs(normal @ light)[:, None]
    image[hit] = np.clip(colour * (0.3 + 0.75 * lambert), 0, 1)


def pixel_mask(camera: Camera, vertices: list[np.ndarray]) -> np.ndarray:
    """(H, W) bool: union of the projected bounding boxes of meshes (where rays can hit something)."""
    mask = np.zeros((camera.height, camera.width), bool)
    for body in vertices:
        pixels, depth = camera.project(body)
        pixels = pixels[depth > 0.05]
        if len(pixels) == 0:
            continue
        x0, y0 = np.clip(np.floor(pixels.min(0)).astype(int), 0, [camera.width, camera.height])
        x1, y1 = np.clip(np.ceil(pixels.max(0)).astype(int) + 1, 0, [camera.width, camera.height])
        mask[y0:y1, x0:x1] = True
    return mask


def degrade(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Camera effects on a uint8 BGR image: colour cast, blur (often), sensor noise."""
    out: np.ndarray = image.astype(np.float32) * rng.uniform(0.85, 1.15, 3) + rng.uniform(-15, 15)
    if rng.random() < 0.5:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.4, 1.3))
    amplitude = int(rng.integers(0, 12))  # uniform integer sensor noise (cheaper than Gaussian)
    out += rng.integers(-amplitude, amplitude + 1, out.shape, dtype=np.int16)
    return np.clip(out, 0, 255).astype(np.uint8)
