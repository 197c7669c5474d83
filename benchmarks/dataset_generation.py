"""Benchmark: how long the synthetic dataset takes to generate, and where the time goes.

    python benchmarks/dataset_generation.py --size default --workers 2

Regenerates the dataset (``force=True``) into the cache (or ``--root``), then merges a record under the
size name into benchmarks/results/dataset_generation.json: the command, date, CPU, load average, wall time,
images/s and the per-stage CPU time per image (summed over workers). Other users of the machine show up
in the load average; note them when comparing numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from trspose.engine.run_folder import cpu_model

RESULTS = Path(__file__).parent / "results" / "dataset_generation.json"


def run(size: str, workers: int, root: str | None, seed: int) -> dict:
    """Generate the dataset and return the benchmark record."""
    from trspose.data.synthetic import dataset_statistics, ensure_dataset, read_manifest

    load_before = os.getloadavg()
    start = time.perf_counter()
    path = ensure_dataset(size, seed=seed, root=root, workers=workers, force=True, progress=True)
    seconds = time.perf_counter() - start
    manifest = read_manifest(path)
    images = sum(split["images"] for split in manifest["splits"].values())
    stages: dict[str, float] = {}
    for split_stages in manifest["cpu_seconds_by_stage"].values():
        for name, value in split_stages.items():
            stages[name] = stages.get(name, 0.0) + value
    statistics = dataset_statistics(path)
    return {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "device": f"{cpu_model()}, {os.cpu_count()} logical cores (CPU only)",
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "workers": workers,
        "images": images,
        "splits": manifest["splits"],
        "image_size_hw": manifest["image_size"],
        "wall_seconds": round(seconds, 1),
        "images_per_second": round(images / seconds, 2),
        "cpu_ms_per_image_by_stage": {k: round(1000 * v / images, 1) for k, v in stages.items()},
        "cpu_ms_per_image_total": round(1000 * sum(stages.values()) / images, 1),
        "instances": {s: v["instances"] for s, v in statistics.items()},
        "box_height_quantiles_val": statistics.get("val", {}).get("box_height_quantiles"),
        "dataset_root": str(path),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="default", help="tiny, demo or default")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", default=None, help="output folder (default: the dataset cache)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    record = run(args.size, args.workers, args.root, args.seed)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[args.size] = record
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
