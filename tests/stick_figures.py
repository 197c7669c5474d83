"""A tiny COCO keypoint dataset of drawn stick figures, for fast engine tests (no body model needed)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from trspose.data.keypoints import COCO17

# A standing person in a unit box (x right, y down), COCO-17 order.
TEMPLATE = np.array(
    [
        [0.50, 0.08], [0.47, 0.06], [0.53, 0.06], [0.43, 0.08], [0.57, 0.08],
        [0.35, 0.22], [0.65, 0.22], [0.28, 0.40], [0.72, 0.40], [0.25, 0.56], [0.75, 0.56],
        [0.40, 0.55], [0.60, 0.55], [0.38, 0.76], [0.62, 0.76], [0.37, 0.96], [0.63, 0.96],
    ],
    dtype=np.float32,
)  # fmt: skip
COLORS = np.random.default_rng(0).integers(40, 255, size=(17, 3))


def write_stick_figure_dataset(
    root: Path, num_train: int = 12, num_val: int = 4, size=(96, 80), seed: int = 0
) -> Path:
    rng = np.random.default_rng(seed)
    for split, count in (("train", num_train), ("val", num_val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        images, annotations = [], []
        for i in range(count):
            image = np.full((*size, 3), 60, np.uint8)
            height, width = size
            bw, bh = rng.uniform(0.4, 0.55) * width, rng.uniform(0.7, 0.9) * height
            x0, y0 = rng.uniform(0, width - bw), rng.uniform(0, height - bh)
            points = TEMPLATE * [bw, bh] + [x0, y0] + rng.normal(0, 1.0, TEMPLATE.shape)
            for a, b in COCO17.skeleton:
                cv2.line(
                    image,
                    tuple(int(v) for v in points[a]),
                    tuple(int(v) for v in points[b]),
                    (200, 200, 200),
                    2,
                )
            for k, p in enumerate(points):
                cv2.circle(image, (int(p[0]), int(p[1])), 3, tuple(int(c) for c in COLORS[k]), -1)
            image_id = i + 1 + (0 if split == "train" else 1000)
            name = f"{image_id:06d}.jpg"
            cv2.imwrite(str(root / "images" / split / name), image)
            images.append({"id": image_id, "file_name": name, "height": height, "width": width})
            keypoints = np.concatenate([points, np.full((17, 1), 2.0)], axis=1)
            annotations.append({
                "id": image_id * 10, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                "bbox": [float(x0), float(y0), float(bw), float(bh)], "area": float(bw * bh),
                "num_keypoints": 17, "keypoints": [round(float(v), 2) for v in keypoints.reshape(-1)],
            })  # fmt: skip
        (root / "annotations").mkdir(exist_ok=True)
        data = {"images": images, "annotations": annotations, "categories": [COCO17.coco_category()]}
        (root / "annotations" / f"person_keypoints_{split}.json").write_text(json.dumps(data))
    return root
