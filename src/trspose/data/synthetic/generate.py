"""Generate a synthetic COCO keypoint dataset in parallel, deterministically.

Image i of split s depends only on (seed, s, i): its RNG is ``SeedSequence([seed, SPLIT_CODES[s], i])``,
torch runs on one thread and the BVHs are built from a canonical layout, so the bytes are the same for any
number of workers. Workers (``spawn`` processes) write the JPEGs and return the annotations; the parent
assembles the JSON files in image order.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from trspose.data.keypoints import SPECS
from trspose.io import write_text

SPLIT_CODES = {"train": 0, "val": 1}
LAYOUTS = (
    "coco17",
    "mpii16",
)  # the keypoint layouts the generator writes (body.POINT_NAMES has their points)
JPEG_QUALITY = (60, 95)  # drawn per image
CHUNK = 8  # images per task sent to a worker


@dataclass(frozen=True)
class SizeSpec:
    """How many images per split, and their (height, width)."""

    train: int
    val: int
    image_size: tuple[int, int] = (288, 384)

    def count(self, split: str) -> int:
        return self.train if split == "train" else self.val


_STATE: dict = {}


def _init_worker() -> None:
    """Per process: one torch thread (deterministic, no oversubscription), the body model, the collision test."""
    import torch

    torch.set_num_threads(1)
    from trspose.data.synthetic.body import get_body_model
    from trspose.data.synthetic.collision import SelfIntersectionTest

    if "body" not in _STATE:
        _STATE["body"] = get_body_model()
        _STATE["collision"] = SelfIntersectionTest(_STATE["body"])


def render_chunk(task: tuple[int, str, list[int], tuple[int, int], str, str]) -> tuple[list[tuple], dict]:
    """Render images `indices` of `split` into `image_dir`; return (index, file, annotations in `layout`) and
    timings. The images do not depend on the layout."""
    from trspose.data.synthetic.body import POINT_NAMES
    from trspose.data.synthetic.compose import stage, synthesize_image

    seed, split, indices, size, image_dir, layout = task
    columns = [POINT_NAMES.index(name) for name in SPECS[layout].names]
    _init_worker()
    timings: dict[str, float] = {}
    results = []
    for index in indices:
        rng = np.random.default_rng(np.random.SeedSequence([seed, SPLIT_CODES[split], index]))
        image, annotations = synthesize_image(
            _STATE["body"], _STATE["collision"], rng, size, timings, columns
        )
        with stage(timings, "writing"):
            name = f"{index:06d}.jpg"
            quality = int(rng.integers(*JPEG_QUALITY))
            ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
            Path(image_dir, name).write_bytes(data.tobytes())
        results.append((index, name, annotations))
    return results, timings


def generate_split(
    root: Path,
    split: str,
    spec: SizeSpec,
    seed: int,
    workers: int | Callable,
    progress: bool,
    layout: str = "coco17",
) -> tuple[dict, dict[str, float]]:
    """Render one split under `root` and write its annotation file in the keypoint `layout` (one of LAYOUTS);
    return (counts, stage timings).

    `workers` is a worker count, or a map function from `task_runner` (to share one pool between splits).
    """
    from tqdm import tqdm

    image_dir = root / "images" / split
    image_dir.mkdir(parents=True, exist_ok=True)
    count = spec.count(split)
    tasks = [(seed, split, list(range(i, min(i + CHUNK, count))), spec.image_size, str(image_dir), layout)
             for i in range(0, count, CHUNK)]  # fmt: skip
    results: list[tuple] = []
    timings: dict[str, float] = {}
    bar = tqdm(total=count, desc=f"synthetic {split}", unit="img", disable=not progress)
    with task_runner(workers) if isinstance(workers, int) else nullcontext(workers) as run:
        for chunk, chunk_timings in run(tasks):
            results.extend(chunk)
            for key, value in chunk_timings.items():
                timings[key] = timings.get(key, 0.0) + value
            bar.update(len(chunk))
    bar.close()
    coco = coco_document(sorted(results), spec.image_size, split, layout)
    path = root / "annotations" / f"person_keypoints_{split}.json"
    write_text(json.dumps(coco, separators=(",", ":")), path)
    counts = {"images": len(coco["images"]), "annotations": len(coco["annotations"])}
    return counts, timings


@contextmanager
def task_runner(workers: int) -> Iterator[Callable]:
    """A function mapping tasks to render_chunk results in order: in this process (workers <= 1) or in a
    pool of spawned processes (kept for the life of the context)."""
    if workers <= 1:
        import torch

        threads = torch.get_num_threads()
        try:
            yield lambda tasks: map(render_chunk, tasks)
        finally:
            torch.set_num_threads(threads)
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_init_worker) as pool:
        yield lambda tasks: pool.imap(render_chunk, tasks)


def coco_document(results: list[tuple], size: tuple[int, int], split: str, layout: str = "coco17") -> dict:
    """The COCO keypoints JSON of one split from (index, file_name, annotations) sorted by index."""
    images: list[dict] = []
    annotations: list[dict] = []
    for index, name, people in results:
        image_id = index + 1
        images.append({"id": image_id, "file_name": name, "height": size[0], "width": size[1]})
        for person in people:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 1, **person})
    return {
        "info": {"description": f"trspose synthetic people ({split})", "version": "1"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [SPECS[layout].coco_category()],
    }


def default_workers() -> int:
    """Two workers at most by default (the machines we target have 2 cores)."""
    return max(1, min(2, os.cpu_count() or 1))


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
