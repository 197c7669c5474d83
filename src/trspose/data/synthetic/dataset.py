"""`ensure_dataset`: the cached, atomically written synthetic dataset.

A dataset folder is complete only when its ``manifest.json`` (written last, atomically) matches the
generator version, size and seed asked for. It is generated in a hidden sibling folder and renamed into
place, so an interrupted run never leaves anything that looks complete.

* ``root=None``: the cache ``cache_dir()/datasets/synthetic-<size>-seed<seed>[-<layout>]-v<GENERATOR_VERSION>``
  (the layout named only when it is not coco17); a partial folder there is regenerated.
* explicit ``root``: an output folder. Empty or missing: generated. A partial or other-version dataset:
  refused unless ``force=True`` (then regenerated). Anything else (a non-dataset folder): always refused.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

from trspose.data.synthetic.generate import (
    LAYOUTS,
    SizeSpec,
    default_workers,
    generate_split,
    now_iso,
    task_runner,
)
from trspose.errors import DataError
from trspose.io import atomic_folder, write_json
from trspose.paths import cache_dir

SIZES: dict[str, SizeSpec] = {
    "tiny": SizeSpec(train=24, val=8),
    "demo": SizeSpec(train=600, val=150),
    "default": SizeSpec(train=10000, val=1000),
}
DATASET_ENTRIES = {"images", "annotations", "manifest.json"}


def generator_version() -> int:
    """The current GENERATOR_VERSION (read from the package at call time, so tests can patch it)."""
    return sys.modules["trspose.data.synthetic"].GENERATOR_VERSION


def default_root(size: str, seed: int, keypoints: str = "coco17") -> Path:
    layout = "" if keypoints == "coco17" else f"-{keypoints}"
    return cache_dir() / "datasets" / f"synthetic-{size}-seed{seed}{layout}-v{generator_version()}"


def expected_identity(size: str, seed: int, keypoints: str = "coco17") -> dict:
    """What a complete folder's manifest says (a coco17 manifest names no layout: older folders stay complete)."""
    spec = SIZES[size]
    layout = {} if keypoints == "coco17" else {"keypoints": keypoints}
    return {
        "generator_version": generator_version(),
        "size": size,
        "seed": seed,
        **layout,
        "counts": {"train": spec.train, "val": spec.val},
        "image_size": list(spec.image_size),
    }


def folder_state(root: Path, identity: dict) -> str:
    """'missing', 'empty', 'complete', 'stale' (a partial or different dataset of ours) or 'foreign'."""
    if not root.exists():
        return "missing"
    if not root.is_dir():
        return "foreign"
    entries = {p.name for p in root.iterdir()}
    if not entries:
        return "empty"
    if not entries <= DATASET_ENTRIES:
        return "foreign"
    try:
        manifest = json.loads((root / "manifest.json").read_text())
    except (OSError, ValueError):
        return "stale"
    same = all(manifest.get(key) == value for key, value in identity.items())
    return "complete" if same else "stale"


def ensure_dataset(
    size: str = "demo",
    seed: int = 0,
    root: str | Path | None = None,
    workers: int | None = None,
    force: bool = False,
    progress: bool = True,
    keypoints: str = "coco17",
) -> Path:
    """Return the root (with images/ and annotations/) of the synthetic dataset, generating it if needed; its
    annotations have the ``keypoints`` layout (coco17 or mpii16; the images are the same)."""
    if size not in SIZES:
        raise DataError(f"unknown synthetic dataset size {size!r}: choose one of {', '.join(SIZES)}")
    if keypoints not in LAYOUTS:
        raise DataError(f"the synthetic dataset has no {keypoints!r} layout: choose one of {', '.join(LAYOUTS)} "
                        "(data.keypoints), or train on your own files (data.dataset=coco)")  # fmt: skip
    explicit = root is not None
    target = Path(root).expanduser() if root is not None else default_root(size, seed, keypoints)
    identity = expected_identity(size, seed, keypoints)
    state = folder_state(target, identity)
    if state == "complete" and not force:
        return target
    if state == "foreign":
        raise DataError(
            f"{target} exists and is not a synthetic dataset folder: choose an empty or new output folder"
        )
    if state == "stale" and explicit and not force:
        raise DataError(
            f"{target} holds a partial or different synthetic dataset (no matching manifest.json): "
            "pass --force to regenerate it, or delete it"
        )
    _check_writable(target)
    _generate_atomically(target, size, seed, workers or default_workers(), progress, keypoints)
    return target


def _check_writable(target: Path) -> None:
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(
            f"cannot create the dataset folder {target}: {error.strerror}; choose a writable folder"
        ) from None
    if not os.access(parent, os.W_OK | os.X_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise DataError(f"the dataset folder {target} is not writable: choose a writable folder")


def _generate_atomically(
    target: Path, size: str, seed: int, workers: int, progress: bool, keypoints: str
) -> None:
    """Generate into a hidden sibling folder, write the manifest last, then swap it into place."""
    _remove_abandoned_partials(target)
    with atomic_folder(target) as temporary:
        start = time.perf_counter()
        spec = SIZES[size]
        splits, timings = {}, {}
        with task_runner(workers) as run:
            for split in ("train", "val"):
                splits[split], timings[split] = generate_split(
                    temporary, split, spec, seed, run, progress, keypoints
                )
        manifest = {
            **expected_identity(size, seed, keypoints),
            "splits": splits,
            "workers": workers,
            "seconds": round(time.perf_counter() - start, 2),
            "cpu_seconds_by_stage": {s: {k: round(v, 2) for k, v in t.items()} for s, t in timings.items()},
            "created": now_iso(),
        }
        write_json(manifest, temporary / "manifest.json", indent=2)


def _remove_abandoned_partials(target: Path) -> None:
    """Delete hidden partial folders of `target` left by killed runs (their process no longer exists)."""
    for folder in target.parent.glob(f".{target.name}.partial-*"):
        pid = folder.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_manifest(root: str | Path) -> dict:
    """The manifest of a generated dataset folder."""
    path = Path(root) / "manifest.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        raise DataError(f"{path} is missing or unreadable: regenerate the dataset") from None
