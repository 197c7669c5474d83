"""Self-intersection test for sampled bodies (anny's exact triangle-triangle test, made cheaper).

anny's ``SelfInterpenetrationModule`` tests every triangle against its neighbours in a BVH (~28 ms per
body, plus a BVH build). We keep its kernel and bone-group masks but (1) reorder the triangles so that the
limb triangles (arms, hands, legs, feet) come first and launch the kernel only over those, since the
interpenetrations a pose sampler makes are limb-into-body or limb-into-limb, and (2) refit one persistent
BVH instead of building a new one per body. A body counts as self-intersecting when more than
``MAX_COLLIDING_FACES`` limb triangles cut another triangle (a few are skin contact in armpits/groins).
"""

from __future__ import annotations

import numpy as np

MAX_COLLIDING_FACES = 12
_LIMB_PREFIXES = (
    "upperarm",
    "lowerarm",
    "wrist",
    "metacarpal",
    "finger",
    "upperleg",
    "lowerleg",
    "foot",
    "toe",
)


class SelfIntersectionTest:
    """Counts self-intersecting limb triangles of one posed body at a time."""

    def __init__(self, body) -> None:
        import warp as wp
        from anny.utils.collision import SelfInterpenetrationModule

        module = SelfInterpenetrationModule(body.model)
        names = sorted(body.bone_index, key=body.bone_index.get)
        limb_bone = np.array([name.startswith(_LIMB_PREFIXES) for name in names])
        is_limb = limb_bone[body.face_bone]
        self._order = np.concatenate([np.flatnonzero(is_limb), np.flatnonzero(~is_limb)])
        self._num_query = int(is_limb.sum())
        masks = module.wp_triangular_faces_mask.numpy()[self._order]
        self._masks = wp.array(masks, dtype=module.wp_triangular_faces_mask.dtype, device="cpu")
        faces = body.faces[self._order].astype(np.int32).reshape(-1)
        points = wp.array(body.rest_vertices.astype(np.float32), dtype=wp.vec3, device="cpu")
        self._mesh = wp.Mesh(points=points, indices=wp.array(faces, dtype=wp.int32, device="cpu"))
        self._kernel = module.test_self_intersection_kernel
        self._colliding = wp.zeros(self._num_query, dtype=wp.int32, device="cpu")

    def count(self, vertices: np.ndarray) -> int:
        """Number of limb triangles of `vertices` (V, 3) that intersect another (non-adjacent) triangle."""
        import warp as wp

        self._mesh.points.assign(np.ascontiguousarray(vertices, np.float32))
        self._mesh.refit()
        wp.launch(
            self._kernel,
            dim=self._num_query,
            inputs=[self._mesh.id, self._masks, self._colliding],
            device="cpu",
        )
        return int((self._colliding.numpy() >= 0).sum())

    def intersects(self, vertices: np.ndarray) -> bool:
        """True when the body interpenetrates itself beyond skin contact."""
        return self.count(vertices) > MAX_COLLIDING_FACES
