"""Statistics of a generated (or any COCO keypoint) dataset, and their markdown rendering."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from trspose.data.coco import file_layout, read_keypoint_file
from trspose.data.keypoints import COCO17, KeypointSpec

BOX_HEIGHT_BINS = (0, 32, 64, 96, 128, 192, 256, 10_000)  # pixels


def dataset_statistics(root: str | Path, splits: tuple[str, ...] = ("train", "val")) -> dict:
    """Per split: images, instances (labelled / ignored), instances per image, visible fraction per keypoint,
    box-height histogram and quantiles, pose-mode counts, visibility-flag fractions."""
    out = {}
    for split in splits:
        path = Path(root) / "annotations" / f"person_keypoints_{split}.json"
        if path.exists():
            spec = file_layout(path) or COCO17
            out[split] = _split_statistics(read_keypoint_file(path, spec), spec)
    return out


def _split_statistics(coco: dict, spec: KeypointSpec) -> dict:
    annotations = coco["annotations"]
    labeled = [a for a in annotations if a["num_keypoints"] > 0]
    flags = np.array([a["keypoints"][2::3] for a in labeled]).reshape(-1, spec.num_keypoints)
    heights = np.array([a["bbox"][3] for a in labeled], float)
    histogram = (
        np.histogram(heights, bins=BOX_HEIGHT_BINS)[0] if len(heights) else np.zeros(len(BOX_HEIGHT_BINS) - 1)
    )
    labels = [
        f"{a}-{b}" if b < 10_000 else f">={a}" for a, b in zip(BOX_HEIGHT_BINS[:-1], BOX_HEIGHT_BINS[1:])
    ]
    return {
        "images": len(coco["images"]),
        "instances": len(labeled),
        "ignored_instances": len(annotations) - len(labeled),
        "instances_per_image": round(len(labeled) / max(len(coco["images"]), 1), 2),
        "visibility_fractions": {
            f"v{v}": round(float((flags == v).mean()), 3) if flags.size else 0.0 for v in (0, 1, 2)
        },
        "visible_fraction_per_keypoint": {
            name: round(float((flags[:, k] == 2).mean()), 3) if len(flags) else 0.0
            for k, name in enumerate(spec.names)
        },
        "box_height_histogram": dict(zip(labels, (int(c) for c in histogram))),
        "box_height_quantiles": {
            f"p{q}": round(float(np.percentile(heights, q)), 1) if len(heights) else 0.0
            for q in (5, 25, 50, 75, 95)
        },
        # synthetic data only: real annotations have no pose mode, and get no row
        "pose_modes": dict(
            sorted(Counter(a["synthetic"]["pose_mode"] for a in labeled if _pose_mode_known(a)).items())
        ),
    }


def _pose_mode_known(annotation: dict) -> bool:
    synthetic = annotation.get("synthetic")
    return isinstance(synthetic, dict) and isinstance(synthetic.get("pose_mode"), str)


def format_statistics(statistics: dict) -> str:
    """Markdown tables (one column per split) of `dataset_statistics` output."""
    splits = list(statistics)
    lines = ["| statistic | " + " | ".join(splits) + " |", "|---|" + "---|" * len(splits)]
    first = statistics[splits[0]] if splits else {}
    for key, value in first.items():
        if isinstance(value, dict):
            for sub in value:
                cells = [str(statistics[s][key].get(sub, "")) for s in splits]
                lines.append(f"| {key}: {sub} | " + " | ".join(cells) + " |")
        else:
            lines.append(f"| {key} | " + " | ".join(str(statistics[s][key]) for s in splits) + " |")
    return "\n".join(lines)
