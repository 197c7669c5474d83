"""How right a semi-supervised checkpoint's pseudo-labels are, and what each confidence mask would keep.

    python benchmarks/pseudo_label_calibration.py runs/benchmarks/<run>/checkpoints/last.pt [--people 1024]

On unlabelled people whose ground truth training never reads (the synthetic data has it for everyone; the run's
labelled people are left out), it measures the PCK@0.1 of the teacher's and the reviewer's pseudo-keypoints and,
for fixed confidence thresholds and for keep fractions (the most confident share of keypoints), the share kept,
their precision and the share of wrong keypoints dropped: whether a mask can drop wrong pseudo-labels at all, and
which. Appends a record to benchmarks/results/pseudo_label_calibration.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

from runs import REPO, load_records, save_records

THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
KEEP_FRACTIONS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)


def mask_rows(hit: np.ndarray, confidence: np.ndarray) -> list[dict]:
    """For each threshold and keep fraction: kept share, precision of the kept, share of the wrong ones dropped
    (all in percent of labelled keypoints, which ``hit`` and ``confidence`` (M,) already are)."""
    rows = []
    if not len(confidence):
        return rows
    order = np.sort(confidence)[::-1]
    wrong = ~hit
    for kind, values in (("threshold", THRESHOLDS), ("keep_fraction", KEEP_FRACTIONS)):
        for value in values:
            cut = value if kind == "threshold" else order[max(0, int(round(value * len(order))) - 1)]
            kept = confidence >= cut
            rows.append({
                "mask": f"{kind} {value}", "kept": 100.0 * kept.mean(),
                "precision": 100.0 * hit[kept].mean() if kept.any() else float("nan"),
                "wrong_dropped": 100.0 * (wrong & ~kept).sum() / max(1, wrong.sum()),
            })  # fmt: skip
    return rows


def probe_of_run(state: dict, split_file: Path, people: int):
    """(the config of a run's checkpoint ``state``, a probe of ``people`` of its unlabelled people that are not in
    the run's labelled subset (``split_file``) and have ground truth; None when there are none)."""
    from trspose.config import config_from_dict
    from trspose.data.sources import load_instances
    from trspose.engine import build
    from trspose.io import read_json

    cfg = config_from_dict(state["config"])
    cfg = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, pseudo_label_people=people))
    files = build.resolve_data(cfg, progress=False)
    train = load_instances(files, build.keypoint_spec(cfg), "train")
    labeled = set(read_json(split_file, "split file")["labeled_ann_ids"])
    probe = build.pseudo_label_probe(cfg, build.unlabeled_people(cfg, files, train),
                                     [inst for inst in train if inst.ann_id in labeled])  # fmt: skip
    return cfg, probe


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoint")
    parser.add_argument("--people", type=int, default=1024)
    parser.add_argument(
        "--fusion", choices=("separate", "agreement", "confidence", "average"),
        help="measure the target of this reviewer fusion instead of the checkpoint's",
    )  # fmt: skip
    args = parser.parse_args()
    from trspose.engine import build
    from trspose.engine.checkpoint import load_checkpoint
    from trspose.engine.run_folder import device_name

    checkpoint = Path(args.checkpoint)
    state = load_checkpoint(checkpoint)
    cfg, probe = probe_of_run(state, checkpoint.parent.parent / "split.json", args.people)
    bare = build.bare_config(cfg)
    method = build.build_method(bare, build.build_model(bare))
    method.load_state_dict(state["method"])
    if args.fusion:
        method.cfg = dataclasses.replace(
            method.cfg, reviewer=dataclasses.replace(method.cfg.reviewer, fusion=args.fusion)
        )
    found = probe.collect(method, torch.device("cpu")) if probe is not None else None
    if found is None or not found.labeled.any():
        sys.exit(f"error: {checkpoint} has no pseudo-labels to measure on people with ground truth (a supervised "
                 "checkpoint, before the burn-in, or no unlabelled person outside the labelled subset); pass another")  # fmt: skip
    seen = found.labeled
    record = {
        "checkpoint": str(checkpoint), "step": state["step"], "fusion": method.cfg.reviewer.fusion, "people": len(probe.dataset.instances),
        "labelled_keypoints": int(seen.sum()), "device": device_name(torch.device("cpu")),
        "command": shlex.join(["python", *sys.argv]),
        "pck": {name: 100.0 * hit[seen].mean() for name, hit in found.hit.items()},
        "masks": {name: mask_rows(found.hit[name][seen], found.confidence[name][seen])
                  for name in found.hit},
    }  # fmt: skip
    if "reviewer" in found.hit:
        teacher, reviewer = found.hit["teacher"][seen], found.hit["reviewer"][seen]
        gap = np.linalg.norm(found.peaks["teacher"] - found.peaks["reviewer"], axis=-1)[seen]  # heatmap px
        confidence = found.confidence["teacher"][seen]
        for px in (1.0, 2.0, 3.0):
            agree = gap <= px  # the teacher's keypoints where the reviewer's peak lies within px: a mask too
            if not agree.any():
                continue
            record["masks"]["teacher"].append(
                {"mask": f"agree {px:g}px", "kept": 100.0 * agree.mean(), "precision": 100.0 * teacher[agree].mean(),
                 "wrong_dropped": 100.0 * (~teacher & ~agree).sum() / max(1, (~teacher).sum())}
            )  # fmt: skip
            for fraction in (0.8, 0.7):  # then the most confident share of the agreeing ones
                cut = np.sort(confidence[agree])[::-1][max(0, int(round(fraction * agree.sum())) - 1)]
                both = agree & (confidence >= cut)
                record["masks"]["teacher"].append(
                    {"mask": f"agree {px:g}px, keep {fraction}", "kept": 100.0 * both.mean(),
                     "precision": 100.0 * teacher[both].mean(),
                     "wrong_dropped": 100.0 * (~teacher & ~both).sum() / max(1, (~teacher).sum())}
                )  # fmt: skip
        more_confident = np.where(
            found.confidence["reviewer"][seen] > found.confidence["teacher"][seen], reviewer, teacher
        )
        record["reviewer"] = {
            "right_where_teacher_wrong": 100.0 * (reviewer & ~teacher).mean(),
            "wrong_where_teacher_right": 100.0 * (~reviewer & teacher).mean(),
            "pck_more_confident_of_the_two": 100.0 * more_confident.mean(),
            "pck_either_right": 100.0 * (reviewer | teacher).mean(),
        }
    print(json.dumps({k: v for k, v in record.items() if k != "masks"}, indent=1))
    for name, rows in record["masks"].items():
        print(f"\n{name}: mask | kept % | precision % | wrong dropped %")
        for row in rows:
            print(
                f"  {row['mask']:<18} {row['kept']:6.1f} {row['precision']:6.1f} {row['wrong_dropped']:6.1f}"
            )
    out = REPO / "benchmarks" / "results" / "pseudo_label_calibration.json"
    save_records([*load_records(out), record], out)


if __name__ == "__main__":
    main()
