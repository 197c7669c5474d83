"""Labels from the tools people label with, DeepLabCut, SLEAP and Label Studio, turned into a dataset folder in the
COCO layout trspose reads (``trspose convert``). sleap-io reads the three formats; this module checks what it gets,
copies or extracts the labelled frames, draws each subject's box around its labelled points, and writes::

    OUT/annotations/person_keypoints_{train,val}.json   one keypoint category: the tool's names and skeleton
    OUT/images/{train,val}/                             the labelled frames (image files copied, video frames as PNG)
    OUT/images/unlabeled/                               with --unlabeled-frames: frames of the videos nobody labelled
    OUT/keypoints.yaml                                  the layout (data.keypoints): names, skeleton, flip pairs

so that ``data.dataset=coco data.root=OUT data.keypoints=OUT/keypoints.yaml`` trains on it. The validation frames are
a seeded random share of the labelled frames (``--val-fraction``). Left/right pairs are the tool's symmetries
(SLEAP), else inferred from the names (``left_ear``/``right_ear``, ``ear_L``/``ear_R``, ...). The folder is written
beside OUT and renamed into place when whole; an existing non-empty OUT is never touched.

- DeepLabCut: ``CollectedData_<scorer>.csv`` of a project (single or multi-animal), its images found relative to the
  project folder as DeepLabCut stores them; the ``.h5`` beside it holds the same table, and the ``.csv`` is read.
  The skeleton comes from the project's ``config.yaml`` when sleap-io finds one.
- SLEAP: a ``.slp`` file, its frames read from the videos or images it links to, or embedded in it (a labels
  package); only user-labelled instances count, predictions are left out.
- Label Studio: the JSON export of a keypoint project (``keypointlabels``, and ``rectanglelabels`` with relations
  for several subjects per image), its images found by name in ``--images``.
"""

from __future__ import annotations

import csv
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from trspose.data.coco import image_size, load_image
from trspose.data.keypoints import infer_flip_pairs
from trspose.errors import DataError
from trspose.io import atomic_folder, os_reason, write_bytes, write_json, write_text

TOOL_FORMATS = ("dlc", "sleap", "labelstudio")
BOX_PADDING = (
    0.1  # the box around a subject's labelled points grows by this share of its larger side, each way
)
MIN_BOX_PADDING = 4.0  # pixels, at least
INSTALL_HINT = (
    "reading DeepLabCut, SLEAP and Label Studio files needs sleap-io: pip install 'trspose[labels]'"
)


@dataclass
class Frame:
    """One labelled frame: where its pixels come from, and its subjects' points (n, K, 2), NaN where unlabelled."""

    name: str
    """The file name it gets under images/ (unique)."""
    points: np.ndarray
    source: tuple[str, int]
    """(video, frame index) it was labelled on."""
    file: Path | None = None
    """An image file to copy as it is."""
    pixels: np.ndarray | None = None
    """Or decoded pixels (RGB or grey) to write as PNG."""


@dataclass
class ToolLabels:
    names: list[str]
    skeleton: list[tuple[int, int]]
    flip_pairs: list[tuple[int, int]]
    frames: list[Frame]
    category: str
    videos: list[Any]
    """sleap-io videos the frames came from (for --unlabeled-frames)."""


def detect_tool_format(path: Path) -> str | None:
    """'dlc' or 'sleap' from the file's suffix; None for anything else (a JSON file: see is_label_studio)."""
    suffix = path.suffix.lower()
    if suffix == ".slp":
        return "sleap"
    if suffix in (".csv", ".h5"):
        return "dlc"
    return None


def is_label_studio(data: Any) -> bool:
    first = data[0] if isinstance(data, list) and data else None
    return isinstance(first, dict) and "data" in first and ("annotations" in first or "completions" in first)


def _sleap_io():
    try:
        import sleap_io
    except ImportError:
        raise DataError(INSTALL_HINT) from None
    return sleap_io


# ---------------------------------------------------------------------------------------------------------------
# Reading


def read_tool_labels(path: Path, fmt: str, images: Path | None = None) -> ToolLabels:
    """The labels of ``path`` in the tool format ``fmt``, checked; a one-line DataError naming the file otherwise."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if fmt == "dlc":
        path = _dlc_csv(path)
        order = _dlc_bodyparts(path)
        labels = _load(lambda sio: sio.load_dlc(str(path)), path, "a DeepLabCut CSV")
        return _from_sleap_io(labels, path, order, images)
    if fmt == "sleap":
        labels = _load(lambda sio: sio.load_slp(str(path)), path, "a SLEAP .slp file")
        return _from_sleap_io(labels, path, None, images)
    if fmt == "labelstudio":
        return _label_studio(path, images)
    raise DataError(f"--format {fmt!r} is not one of {', '.join(TOOL_FORMATS)}")


def _load(read, path: Path, what: str):
    sio = _sleap_io()
    try:
        return read(sio)
    except DataError:
        raise
    except Exception as error:  # sleap-io, pandas and h5py raise many kinds on a malformed file
        reason = " ".join(str(error).split()) or type(error).__name__
        raise DataError(f"{path}: cannot read it as {what} ({reason})") from None


def _dlc_csv(path: Path) -> Path:
    if path.suffix.lower() == ".csv":
        return path
    beside = path.with_suffix(".csv")
    if beside.is_file():
        return beside
    raise DataError(f"{path}: give the CollectedData_*.csv that DeepLabCut writes beside this .h5 (the same table); "
                    f"{beside.name} is not there")  # fmt: skip


def _dlc_bodyparts(path: Path) -> list[str]:
    """The body parts of a DeepLabCut CSV in its column order, checked: each has an x and a y column, and every
    labelled image it lists is in the project (sleap-io drops a missing one and shifts the rows after it onto the
    wrong images). A multi-animal project's unique body parts (individual ``single``) are left out: they belong to
    no animal."""
    try:
        with open(path, newline="") as handle:
            table = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read it ({getattr(error, 'strerror', None) or error})") from None
    rows = {row[0]: row for row in table[:4] if row}
    if "bodyparts" not in rows or "coords" not in rows:
        raise DataError(f"{path}: not a DeepLabCut CSV (no 'bodyparts' and 'coords' header rows); give the "
                        "labelled-data file CollectedData_<scorer>.csv")  # fmt: skip
    parts, coords = rows["bodyparts"], rows["coords"]
    individuals = rows.get("individuals", [""] * len(parts))
    seen: dict[tuple[str, str], set[str]] = {}
    for individual, part, coord in zip(individuals, parts, coords):
        if part and part != "bodyparts" and coord in ("x", "y", "likelihood"):
            seen.setdefault((individual, part), set()).add(coord)
    for (individual, part), found in seen.items():
        missing = sorted({"x", "y"} - found)
        if missing:
            who = f" of {individual}" if individual else ""
            raise DataError(f"{path}: body part '{part}'{who} has no {' or '.join(missing)} column; a DeepLabCut CSV "
                            "has an x and a y column for every body part")  # fmt: skip
    names = list(dict.fromkeys(part for individual, part in seen if individual != "single"))
    if not names:
        raise DataError(f"{path}: lists no body parts")
    index_columns = next((i for i, coord in enumerate(coords) if coord in ("x", "y", "likelihood")), 1)
    project = path.resolve().parents[2] if len(path.resolve().parents) > 2 else path.parent
    for row in table[len(rows) :]:
        image = Path(*[cell for cell in row[:index_columns] if cell]) if row else None
        if image is not None and not (project / image).is_file() and not (path.parent / image.name).is_file():
            raise DataError(f"{path}: the labelled image {image} is not in the project ({project / image}); "
                            "put it back, or remove its row in DeepLabCut")  # fmt: skip
    return names


def _from_sleap_io(labels, path: Path, order: list[str] | None, images: Path | None) -> ToolLabels:
    if len(labels.skeletons) != 1:
        raise DataError(f"{path}: has {len(labels.skeletons)} skeletons; trspose trains one keypoint layout, so "
                        "export the labels of one skeleton")  # fmt: skip
    skeleton = labels.skeletons[0]
    tool_names = list(skeleton.node_names)
    names = order or tool_names
    column = [tool_names.index(name) for name in names]
    edges = [(names.index(tool_names[a]), names.index(tool_names[b])) for a, b in skeleton.edge_inds]
    symmetries = [(names.index(tool_names[a]), names.index(tool_names[b])) for a, b in skeleton.symmetry_inds]
    flips = [_left_first(pair, names) for pair in symmetries] or list(infer_flip_pairs(names))
    frames: list[Frame] = []
    used: set[str] = set()
    for lf in sorted(labels.labeled_frames, key=lambda f: (labels.videos.index(f.video), f.frame_idx)):
        instances = [inst.numpy()[column] for inst in lf.user_instances]
        instances = [p for p in instances if np.isfinite(p).all(1).any()]
        if not instances:
            continue
        frames.append(_frame(lf, np.stack(instances).astype(np.float64), path, images, used))
    if not frames:
        raise DataError(f"{path}: has no labelled frames (no user-labelled instance with a point); label some "
                        "frames first (predictions do not count)")  # fmt: skip
    category = skeleton.name if skeleton.name and not skeleton.name.startswith("Skeleton") else "subject"
    return ToolLabels(names, edges, flips, frames, category, list(labels.videos))


def _left_first(pair: tuple[int, int], names: list[str]) -> tuple[int, int]:
    """A symmetry as a (left, right) pair where the names say which is which, else as given."""
    inferred = infer_flip_pairs([names[pair[0]], names[pair[1]]])
    return (pair[1], pair[0]) if inferred == ((1, 0),) else pair


def _frame(lf, points: np.ndarray, path: Path, images: Path | None, used: set[str]) -> Frame:
    """Where the frame's pixels are: an image file to copy (image folders, Label Studio), or decoded pixels."""
    video = lf.video
    files = video.filename if isinstance(video.filename, list) else None
    if files is not None:  # a sequence of image files (DeepLabCut's labeled-data, SLEAP image projects)
        file = _find_image(Path(files[lf.frame_idx]), path, images)
        return Frame(_unique(file.name, used), points, (str(files), lf.frame_idx), file=file)
    try:
        pixels = lf.image
    except Exception as error:  # the video's reader: missing file, codec
        reason = " ".join(str(error).split()) or type(error).__name__
        raise DataError(f"{path}: cannot read frame {lf.frame_idx} of {video.filename} ({reason}); put the video "
                        "at that path, or export the labels with their frames embedded (a SLEAP labels package)") from None  # fmt: skip
    if pixels is None:
        raise DataError(f"{path}: frame {lf.frame_idx} of {video.filename} cannot be read; put the video at that "
                        "path, or export the labels with their frames embedded (a SLEAP labels package)")  # fmt: skip
    stem = Path(str(video.filename)).stem
    name = _unique(f"{stem}_{lf.frame_idx:06d}.png", used)
    return Frame(name, points, (str(video.filename), lf.frame_idx), pixels=np.asarray(pixels))


def _find_image(file: Path, path: Path, images: Path | None) -> Path:
    """The image as the labels name it (relative to the labels file's folder and its parents), else by name in
    ``images``."""
    candidates = (
        [file] if file.is_absolute() else [base / file for base in [Path.cwd(), *path.resolve().parents]]
    )
    if images is not None:
        candidates += [images / file.name, images / _without_upload_prefix(file.name)]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    where = f" or in {images}" if images is not None else "; pass the folder that holds them with --images"
    raise DataError(f"{path}: the labelled image {file} is not found beside the labels{where}")


def _without_upload_prefix(name: str) -> str:
    """Label Studio names an uploaded file ``<8 hex digits>-<original name>``."""
    return re.sub(r"^[0-9a-f]{8}-", "", name)


def _unique(name: str, used: set[str]) -> str:
    stem, suffix, number = Path(name).stem, Path(name).suffix, 1
    while name in used:
        number += 1
        name = f"{stem}_{number}{suffix}"
    used.add(name)
    return name


def _label_studio(path: Path, images: Path | None) -> ToolLabels:
    """A Label Studio JSON export: keypoint names in order of first appearance, each task's image found by name."""
    from trspose.io import read_json

    tasks = read_json(path, "Label Studio export")
    if not is_label_studio(tasks):
        raise DataError(
            f"{path}: not a Label Studio JSON export (a list of tasks with 'data' and 'annotations')"
        )
    names: list[str] = []
    annotated = []
    for position, task in enumerate(tasks):
        results = _task_results(task, path, position)
        if not results:  # Label Studio exports every task, annotated or not
            continue
        annotated.append(task)
        for result in results:
            if isinstance(result, dict) and result.get("type") == "keypointlabels":
                for name in result.get("value", {}).get("keypointlabels", []):
                    if name not in names:
                        names.append(name)
        if not isinstance(task.get("data"), dict) or not task["data"]:
            raise DataError(f"{path}: task {position} has no image in its 'data'")
        file = Path(str(next(iter(task["data"].values()))).split("?d=")[-1])
        found = _find_image(file, path, images)
        height, width = image_size(found)
        task["meta"] = {"video": {"filename": [str(found)], "shape": (1, height, width, 3), "frame_idx": 0}}
    if not names:
        raise DataError(f"{path}: has no keypoint labels (results of type keypointlabels)")
    sio = _sleap_io()
    from sleap_io.io.labelstudio import parse_tasks

    labels = _load(lambda _: parse_tasks(annotated, sio.Skeleton(list(names))), path, "a Label Studio export")
    return _from_sleap_io(labels, path, None, images)


def _task_results(task: Any, path: Path, position: int) -> list:
    key = "annotations" if isinstance(task, dict) and "annotations" in task else "completions"
    entries = task.get(key) if isinstance(task, dict) else None
    if not isinstance(entries, list):
        raise DataError(f"{path}: task {position} has no 'annotations' list")
    if not entries:
        return []
    results = entries[0].get("result") if isinstance(entries[0], dict) else None
    if not isinstance(results, list):
        raise DataError(f"{path}: task {position}'s first annotation has no 'result' list")
    return results


# ---------------------------------------------------------------------------------------------------------------
# Writing


def subject_box(points: np.ndarray, width: int, height: int) -> list[float]:
    """(x, y, w, h) around the labelled points (n, 2; NaN rows skipped), padded, clipped to the image."""
    labelled = points[np.isfinite(points).all(1)]
    low, high = labelled.min(0), labelled.max(0)
    pad = max(MIN_BOX_PADDING, BOX_PADDING * float((high - low).max()))
    x0, y0 = max(0.0, low[0] - pad), max(0.0, low[1] - pad)
    x1, y1 = min(float(width), high[0] + pad), min(float(height), high[1] + pad)
    return [round(x0, 2), round(y0, 2), round(max(x1 - x0, 1.0), 2), round(max(y1 - y0, 1.0), 2)]


def convert_tool_labels(
    source: Path | str,
    out: Path | str,
    fmt: str,
    images: Path | str | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    unlabeled_frames: int = 0,
) -> Path:
    """Write the dataset folder ``out`` (see the module docstring) from a labelling tool's file; returns ``out``."""
    source, out = Path(source), Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out} exists and is not empty: choose a new output folder")
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    labels = read_tool_labels(source, fmt, Path(images) if images else None)
    if len(labels.frames) < 2:
        raise DataError(f"{source}: has {len(labels.frames)} labelled frame; trspose needs at least 2 (one to "
                        "validate on)")  # fmt: skip
    order = list(range(len(labels.frames)))
    random.Random(seed).shuffle(order)
    num_val = min(len(order) - 1, max(1, round(val_fraction * len(order))))  # at least one of each
    val = set(order[:num_val])
    with atomic_folder(out) as temporary:
        counts = {}
        for split in ("train", "val"):
            frames = [f for i, f in enumerate(labels.frames) if (i in val) == (split == "val")]
            counts[split] = _write_split(temporary, split, frames, labels)
        unlabeled = _write_unlabeled(temporary, labels, unlabeled_frames) if unlabeled_frames else 0
        write_text(_spec_text(labels, source), temporary / "keypoints.yaml")
    pairs = ", ".join(f"{labels.names[a]}/{labels.names[b]}" for a, b in labels.flip_pairs) or "none"
    print(f"wrote {out}: {counts['train'][0]} train and {counts['val'][0]} validation frames "
          f"({counts['train'][1] + counts['val'][1]} subjects), {len(labels.names)} keypoints "
          f"({', '.join(labels.names)}), left/right pairs: {pairs}"
          + (f", {unlabeled} unlabelled frames in images/unlabeled" if unlabeled_frames else ""))  # fmt: skip
    extra = " data.unlabeled_images=images/unlabeled" if unlabeled else ""
    print(f"train on it: trspose train CONFIG data.dataset=coco data.root={out} data.keypoints={out / 'keypoints.yaml'}"
          f"{extra}")  # fmt: skip
    return out


def _write_split(root: Path, split: str, frames: list[Frame], labels: ToolLabels) -> tuple[int, int]:
    images: list[dict] = []
    annotations: list[dict] = []
    for image_id, frame in enumerate(frames, 1):
        target = root / "images" / split / frame.name
        if frame.file is not None:
            decoded = load_image(frame.file)  # checked: a one-line error for a broken file
            try:
                data = frame.file.read_bytes()
            except OSError as error:
                raise DataError(f"{frame.file}: cannot read it ({os_reason(error)})") from None
            write_bytes(data, target)
        else:
            decoded = _bgr(frame.pixels)
            ok, encoded = cv2.imencode(".png", decoded)
            write_bytes(encoded.tobytes(), target)
        height, width = decoded.shape[:2]
        images.append({"id": image_id, "file_name": frame.name, "width": width, "height": height})
        for points in frame.points:
            labelled = np.isfinite(points).all(1)
            keypoints = [v for (x, y), ok in zip(points, labelled)
                         for v in ((round(float(x), 2), round(float(y), 2), 2) if ok else (0, 0, 0))]  # fmt: skip
            box = subject_box(points, width, height)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                                "bbox": box, "area": round(box[2] * box[3], 2), "num_keypoints": int(labelled.sum()),
                                "keypoints": keypoints})  # fmt: skip
    category = {"id": 1, "name": labels.category, "supercategory": labels.category, "keypoints": labels.names,
                "skeleton": [[a + 1, b + 1] for a, b in labels.skeleton]}  # fmt: skip
    document = {"images": images, "annotations": annotations, "categories": [category]}
    write_json(document, root / "annotations" / f"person_keypoints_{split}.json", indent=None)
    return len(images), len(annotations)


def _bgr(pixels: np.ndarray | None) -> np.ndarray:
    """sleap-io's (H, W, 1) grey or (H, W, 3) RGB frame as an image cv2 writes."""
    assert pixels is not None
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        return pixels[:, :, 0]
    return cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)


def _write_unlabeled(root: Path, labels: ToolLabels, count: int) -> int:
    """Up to ``count`` frames spread evenly over the labels' video files, none of them a labelled one, as PNG (a
    frame the video's reader cannot decode is skipped). A folder of extracted frames (DeepLabCut's labeled-data)
    stands for its source video where the labels know it (DeepLabCut's config.yaml video_sets), its frames named by
    their index in it (``img0123.png``); frames embedded in a SLEAP package stand for theirs."""
    labelled = {frame.source for frame in labels.frames}
    candidates = []
    for video in labels.videos:
        taken = {index for name, index in labelled if name == str(video.filename)}
        if isinstance(video.filename, list):  # extracted frames: their source video, if any
            taken = {_frame_number(video.filename[index]) for index in taken}
            video = getattr(video, "source_video", None)
        elif str(video.filename).lower().endswith(".slp"):  # embedded frames: their indices are the source's
            video = getattr(video, "source_video", None)
        if video is None or isinstance(video.filename, list) or str(video.filename).lower().endswith(".slp"):
            continue
        try:
            if video.exists() and video.backend is None:
                video.open()
            length = int(video.shape[0]) if video.exists() and video.shape is not None else 0
        except Exception:  # a video that cannot be opened gives no frames
            length = 0
        candidates += [(video, i) for i in range(length) if i not in taken]
    if not candidates:
        raise DataError("--unlabeled-frames: the labels link to no video file that can be read; put the videos at "
                        "the paths the labels name (DeepLabCut: config.yaml's video_sets), or collect unlabelled "
                        "images yourself (data.unlabeled_images)")  # fmt: skip
    chosen = [candidates[i * len(candidates) // count] for i in range(min(count, len(candidates)))]
    used: set[str] = set()
    for video, index in chosen:
        try:
            pixels = np.asarray(video[index])
        except Exception:  # the reader overstated the video's length, or a damaged frame
            continue
        ok, encoded = cv2.imencode(".png", _bgr(pixels))
        name = _unique(f"{Path(video.filename).stem}_{index:06d}.png", used)
        write_bytes(encoded.tobytes(), root / "images" / "unlabeled" / name)
    return len(used)


def _frame_number(file: str) -> int:
    """The frame index in an extracted frame's name (DeepLabCut's ``img0123.png``); -1 where there is none."""
    digits = re.findall(r"\d+", Path(file).stem)
    return int(digits[-1]) if digits else -1


def _spec_text(labels: ToolLabels, source: Path) -> str:
    spec = {
        "names": labels.names,
        "skeleton": [[labels.names[a], labels.names[b]] for a, b in labels.skeleton],
        "flip_pairs": [[labels.names[a], labels.names[b]] for a, b in labels.flip_pairs],
    }
    note = (f"# The keypoint layout of {source.name} (trspose convert): data.keypoints=<this file>.\n"
            "# No OKS sigmas: AP uses 0.072 for every keypoint until you add 'sigmas' (one per keypoint; COCO's run\n"
            "# from 0.025 for eyes to 0.107 for hips: larger for points that are harder to place).\n")  # fmt: skip
    return note + yaml.safe_dump(spec, sort_keys=False, default_flow_style=None, width=110)


def json_is_label_studio(path: Path) -> bool:
    try:
        return is_label_studio(json.loads(path.read_text()))
    except (OSError, ValueError):
        return False
