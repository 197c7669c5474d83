"""Drawing poses on images and making image grids (dataset previews, prediction overlays).

Images are uint8 BGR (OpenCV order); keypoints are (K, 3) arrays of (x, y, v) in pixels, where v is a COCO
visibility flag (0 unlabelled, 1 occluded, 2 visible) or a confidence score.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np

from trspose.data.coco import file_layout, load_image, read_keypoint_file
from trspose.data.geometry import affine_points, box_to_center_scale, get_affine_transform
from trspose.data.keypoints import COCO17, KeypointSpec
from trspose.data.transforms import BOX_PADDING, warp_image
from trspose.errors import DataError
from trspose.io import write_bytes, write_image

LEFT_COLOUR = (60, 60, 255)  # BGR red: the person's left side
RIGHT_COLOUR = (255, 140, 40)  # BGR blue: the person's right side
CENTRE_COLOUR = (40, 220, 255)  # BGR yellow: nose
BOX_COLOUR = (255, 255, 255)


def _colour(name: str) -> tuple[int, int, int]:
    if name.startswith("left"):
        return LEFT_COLOUR
    return RIGHT_COLOUR if name.startswith("right") else CENTRE_COLOUR


def draw_pose(
    image_bgr: np.ndarray,
    keypoints: np.ndarray,
    spec: KeypointSpec = COCO17,
    box: list[float] | np.ndarray | None = None,
    score_threshold: float = 0.0,
    radius: int | None = None,
) -> np.ndarray:
    """A copy of `image_bgr` with the skeleton, keypoints and optional (x, y, w, h) box drawn.

    Points with v <= score_threshold are skipped. When the third column holds COCO flags (only 0, 1, 2) a
    filled dot is visible (v = 2) and a hollow ring occluded (v = 1); scores are always filled dots.
    Left points are red, right ones blue, the nose yellow; `radius` defaults to ~1/150 of the image.
    """
    out = image_bgr.copy()
    points = np.asarray(keypoints, np.float64).reshape(spec.num_keypoints, 3)
    radius = radius or max(2, int(round(min(out.shape[:2]) / 150)))
    shown = points[:, 2] > score_threshold
    if box is not None:
        x, y, w, h = (float(v) for v in box)
        cv2.rectangle(out, (round(x), round(y)), (round(x + w), round(y + h)), BOX_COLOUR, 1)
    for a, b in spec.skeleton:
        if shown[a] and shown[b]:
            colour = _colour(spec.names[a]) if spec.names[a][:4] == spec.names[b][:4] else (80, 220, 80)
            cv2.line(out, _point(points[a]), _point(points[b]), colour, max(1, radius // 2), cv2.LINE_AA)
    flags = np.isin(points[:, 2], (0, 1, 2)).all()  # COCO flags, not scores: v=1 drawn hollow
    for k in np.flatnonzero(shown):
        occluded = flags and points[k, 2] == 1
        cv2.circle(out, _point(points[k]), radius, _colour(spec.names[k]), 1 if occluded else -1, cv2.LINE_AA)
    return out


def _point(xyv: np.ndarray) -> tuple[int, int]:
    return int(round(xyv[0])), int(round(xyv[1]))


def make_grid(images: list[np.ndarray], columns: int = 4, gap: int = 2) -> np.ndarray:
    """Tile images into one, each cell the first image's size: other sizes are letterboxed into the cell
    (scaled to fit, aspect ratio kept, centred on white), so portrait pictures are not squashed."""
    height, width = images[0].shape[:2]
    rows = (len(images) + columns - 1) // columns
    grid = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap, 3), 255, np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        top, left = r * (height + gap), c * (width + gap)
        grid[top : top + height, left : left + width] = letterbox(image, height, width)
    return grid


def letterbox(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image`` scaled to fit (height, width) with its aspect ratio kept, centred on white."""
    if image.shape[:2] == (height, width):
        return image
    scale = min(height / image.shape[0], width / image.shape[1])
    new_h, new_w = max(1, round(image.shape[0] * scale)), max(1, round(image.shape[1] * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    cell = np.full((height, width, 3), 255, np.uint8)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    cell[top : top + new_h, left : left + new_w] = resized
    return cell


def save_grid(
    images: list[np.ndarray], path: str | Path, columns: int = 4, max_width: int = 1000, palette: bool = False
) -> Path:
    """Write a grid of BGR images as PNG, downscaled to at most `max_width` pixels wide.

    `palette=True` stores 256 colours (3-4x smaller files, for previews kept in the repository).
    """
    grid = make_grid(images, columns)
    if grid.shape[1] > max_width:
        scale = max_width / grid.shape[1]
        grid = cv2.resize(grid, (max_width, round(grid.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    path = Path(path)
    if palette:
        from PIL import Image

        encoded = io.BytesIO()
        Image.fromarray(grid[..., ::-1]).quantize(colors=256).save(encoded, format="PNG", optimize=True)
        return write_bytes(encoded.getbuffer(), path)
    return write_image(grid, path, (cv2.IMWRITE_PNG_COMPRESSION, 9))


def crop_person(
    image: np.ndarray, box: list[float], keypoints: np.ndarray, input_size: tuple[int, int] = (256, 192)
) -> tuple[np.ndarray, np.ndarray]:
    """The evaluation crop of a person box (see :mod:`trspose.data.geometry`; no augmentation).

    Returns the (H, W, 3) crop and the keypoints (K, 3) mapped into it (flags unchanged).
    """
    center, scale = box_to_center_scale(box, input_size, padding=BOX_PADDING)
    image_to_crop = get_affine_transform(center, scale, 0.0, input_size)
    mapped = np.asarray(keypoints, np.float64).copy()
    mapped[:, :2] = affine_points(mapped[:, :2], image_to_crop)
    return warp_image(image, image_to_crop, input_size), mapped


def preview_dataset(
    root: Path,
    out_dir: Path,
    split: str = "val",
    num_images: int = 12,
    input_size: tuple[int, int] = (256, 192),
) -> list[Path]:
    """Write `preview_<split>_images.png` (full images) and `preview_<split>_crops.png` (top-down crops).

    ``root`` is a dataset in COCO layout (``annotations/person_keypoints_<split>.json``, ``images/<split>/``);
    the annotation file is checked whole first, and a missing or unreadable image is a one-line DataError.
    """
    root, out_dir = Path(root), Path(out_dir)
    ann_path = root / "annotations" / f"person_keypoints_{split}.json"
    if not ann_path.is_file():
        raise DataError(
            f"{root}: not a dataset in COCO layout (no annotations/person_keypoints_{split}.json); "
            f"pass a folder holding annotations/person_keypoints_{split}.json and images/{split}/"
        )
    spec = file_layout(ann_path) or COCO17
    data = read_keypoint_file(ann_path, spec)
    by_image: dict[int, list[dict]] = {}
    for annotation in data["annotations"]:
        by_image.setdefault(annotation["image_id"], []).append(annotation)
    images: list[np.ndarray] = []
    crops: list[np.ndarray] = []
    for info in data["images"][:num_images]:
        image = cv2.cvtColor(load_image(root / "images" / split / info["file_name"]), cv2.COLOR_RGB2BGR)
        drawn = image
        for annotation in by_image.get(info["id"], []):
            keypoints = np.array(annotation["keypoints"], float).reshape(-1, 3)
            drawn = draw_pose(drawn, keypoints, spec, box=annotation["bbox"])
            if annotation["num_keypoints"] > 0 and len(crops) < 2 * num_images:
                crop, mapped = crop_person(image, annotation["bbox"], keypoints, input_size)
                crops.append(draw_pose(crop, mapped, spec))
        images.append(drawn)
    if not images:
        return []
    paths = [save_grid(images, out_dir / f"preview_{split}_images.png", columns=4, palette=True)]
    if crops:
        paths.append(save_grid(crops, out_dir / f"preview_{split}_crops.png", columns=8, palette=True))
    return paths


def draw_overlays(
    results: list[dict],
    paths: dict,
    names: dict,
    spec,
    out_dir: Path,
    *,
    score_threshold: float,
    max_images: int = 0,
) -> Path:
    """One PNG per image with every predicted skeleton drawn (``out_dir/overlays``) and ``out_dir/grid.png``."""
    by_image: dict[int, list[dict]] = {}
    for r in results:
        by_image.setdefault(r["image_id"], []).append(r)
    chosen = sorted(by_image)[:max_images] if max_images else sorted(by_image)
    canvases = []
    for image_id in chosen:
        canvas = cv2.cvtColor(load_image(paths[image_id]), cv2.COLOR_RGB2BGR)
        for person in by_image[image_id]:
            keypoints = np.asarray(person["keypoints"], dtype=np.float32).reshape(-1, 3)
            canvas = draw_pose(canvas, keypoints, spec, score_threshold=score_threshold)
        write_image(canvas, out_dir / "overlays" / f"{names[image_id]}.png")
        canvases.append(canvas)
    return save_grid(canvases[:16], out_dir / "grid.png")
