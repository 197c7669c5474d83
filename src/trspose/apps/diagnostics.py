"""What a model gets wrong: per-keypoint diagnostics and the worst-predicted people (``trspose eval
--per-keypoint DIR``, ``--worst N DIR``).

For semi-supervised checkpoints ``--worst`` also draws the teacher's pseudo-labels on the people of the training
split that it scores worst: on the synthetic data those people have ground truth, which training never reads but
this picture can, so it shows what the teacher gets wrong and how confident it is about it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np

from trspose.apps.drawing import crop_person, draw_pose, save_grid
from trspose.data.coco import load_coco_instances, load_image
from trspose.errors import DataError
from trspose.evaluation.per_keypoint import (
    MatchedPeople,
    format_table,
    match_people,
    pair_by_annotation,
    per_keypoint_metrics,
    plot_per_keypoint,
    unmatched,
)
from trspose.io import read_json, write_json

PANEL_HEIGHT = 256  # crops are drawn this tall, whatever the model's input size


def pairs_of(predictions, instances, spec, detector_boxes: bool) -> MatchedPeople:
    """Predictions paired with ground truth: by the box they were made on, or by OKS for detector boxes."""
    pair = match_people if detector_boxes else pair_by_annotation
    return pair(predictions, instances, spec.sigmas)


def write_per_keypoint(matched: MatchedPeople, spec, input_size, out_dir: Path, title: str) -> dict:
    """``per_keypoint.json`` and ``per_keypoint.png`` in ``out_dir``; prints the table; returns the metrics."""
    metrics = per_keypoint_metrics(matched, spec.sigmas, spec.flip_index(), tuple(input_size))
    out_dir.mkdir(parents=True, exist_ok=True)
    table = {
        name: {
            metric: (None if not np.isfinite(v[k]) else round(float(v[k]), 5))
            for metric, v in metrics.items()
        }
        for k, name in enumerate(spec.names)
    }
    write_json({"matched_people": len(matched.oks), "keypoints": table}, out_dir / "per_keypoint.json")
    plot_per_keypoint(spec.names, metrics, out_dir / "per_keypoint.png", title=title)
    print(f"\nper keypoint ({len(matched.oks)} matched people; percent, error in crop pixels):")
    print(format_table(spec.names, metrics))
    print(f"wrote {out_dir / 'per_keypoint.json'} and {out_dir / 'per_keypoint.png'}")
    return metrics


def _panel(
    image: np.ndarray, box, keypoints: np.ndarray, spec, caption: str, score_threshold: float
) -> np.ndarray:
    """The person's top-down crop (BGR, PANEL_HEIGHT tall) with one skeleton and a caption in the corner."""
    width = round(PANEL_HEIGHT * 0.75)
    crop, mapped = crop_person(image, list(box), keypoints, (PANEL_HEIGHT, width))
    canvas = draw_pose(cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), mapped, spec, score_threshold=score_threshold)
    lines = caption.split("\n")
    cv2.rectangle(canvas, (0, 0), (canvas.shape[1], 6 + 16 * len(lines)), (0, 0, 0), thickness=-1)
    for i, line in enumerate(lines):
        cv2.putText(
            canvas, line, (4, 16 + 16 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA
        )
    return canvas


def draw_worst(
    matched: MatchedPeople,
    scores: np.ndarray,
    instances,
    spec,
    count: int,
    path: Path,
    *,
    what: str,
    threshold: float,
) -> Path | None:
    """A grid of the ``count`` lowest-OKS people: prediction (with its confidences) beside the ground truth.
    People no prediction was paired with come first (OKS 0, nothing predicted). None when there is nobody."""
    by_ann = {inst.ann_id: inst for inst in instances}
    panels = []
    for inst in unmatched(matched, instances)[:count]:
        image = load_image(inst.image_path)
        panels.append(
            _panel(
                image, inst.box, np.zeros_like(inst.keypoints), spec, f"{what}: missed\nno prediction", 1.0
            )
        )
        panels.append(
            _panel(image, inst.box, inst.keypoints, spec, f"ground truth\nannotation {inst.ann_id}", 0.0)
        )
    for i in np.argsort(matched.oks, kind="stable")[: max(0, count - len(panels) // 2)]:
        inst = by_ann[int(matched.ann_id[i])]
        image = load_image(inst.image_path)
        confidence = scores[matched.row[i]]  # (K,) the prediction's keypoint scores
        predicted = np.concatenate([matched.predicted[i], confidence[:, None]], axis=1)
        kept = int((confidence >= threshold).sum())
        panels.append(_panel(image, inst.box, predicted, spec,
                             f"{what}: OKS {matched.oks[i]:.2f}\n{kept}/{len(confidence)} scored >= {threshold:g}", threshold))  # fmt: skip
        panels.append(
            _panel(image, inst.box, inst.keypoints, spec, f"ground truth\nannotation {inst.ann_id}", 0.0)
        )
    if not panels:
        print(f"note: no labelled person to draw into {path.name}")
        return None
    return save_grid(panels, path, columns=6, max_width=1600)


def write_worst(matched: MatchedPeople, scores, instances, spec, count: int, out_dir: Path) -> Path | None:
    """``worst.png``: the validation people with the lowest OKS, prediction beside ground truth."""
    path = draw_worst(
        matched, scores, instances, spec, count, out_dir / "worst.png", what="model", threshold=0.3
    )
    if path:
        print(f"the {count} lowest-OKS validation people (missed ones first): {path}")
    return path


def write_teacher_worst(checkpoint, cfg, count: int, out_dir: Path, max_people: int = 512) -> Path | None:
    """``worst_pseudo_labels.png`` for semi-supervised checkpoints: the teacher's pseudo-labels on the training
    split's people (the unlabelled pool) with the lowest OKS against their hidden ground truth, confidences
    thresholded at ``method.confidence_threshold`` (the mask training applies). None for other methods."""
    from trspose.data.sources import load_instances
    from trspose.engine import build
    from trspose.engine.checkpoint import load_checkpoint
    from trspose.engine.distributed import DistributedContext

    if Path(checkpoint).suffix.lower() == ".onnx":
        return None  # an exported network has no teacher
    state = load_checkpoint(checkpoint)
    bare = build.bare_config(cfg)
    method = build.build_method(bare, build.build_model(bare))
    method.load_state_dict(state["method"])
    teacher = method.candidates().get("teacher")
    if teacher is None:
        return None
    spec = build.keypoint_spec(cfg)
    files = build.resolve_data(cfg, progress=False)
    train = load_instances(files, spec, "train")
    split = (
        Path(checkpoint).parent.parent / "split.json"
    )  # the run's labelled subset, when the run folder is there
    # people trained on with their labels (the hold-out's labels only select checkpoints: their picture is useful)
    labeled_ids = set(read_json(split, "split file").get("train_ann_ids", [])) if split.is_file() else set()
    # the unlabelled pool (data.unlabeled_*: extra images have no ground truth to compare with, so they drop out)
    pool = build.unlabeled_with_truth(build.unlabeled_people(cfg, files, train), labeled_ids)[:max_people]
    if not pool:
        print("note: no unlabelled person with ground truth to compare the teacher's pseudo-labels with")
        return None
    # training makes pseudo-labels without the flip test
    evaluator = dataclasses.replace(build.build_evaluator(cfg, pool), flip_index=None)
    predictions = evaluator.predict(teacher.eval(), DistributedContext())
    matched = pair_by_annotation(predictions, pool, spec.sigmas)
    path = draw_worst(matched, predictions.scores, pool, spec, count, out_dir / "worst_pseudo_labels.png",
                      what="teacher", threshold=cfg.method.confidence_threshold)  # fmt: skip
    if path:
        print(f"the teacher's {count} worst pseudo-labels on {len(pool)} unlabelled training people: {path}")
    return path


def write_diagnostics(
    checkpoint, cfg, predictions, annotations: Path, images: Path, spec, *, per_keypoint: str | None,
    worst: tuple[int, str] | None, detector_boxes: bool = False,
) -> None:  # fmt: skip
    """The per-keypoint report and/or the worst cases of an evaluation (ground truth read from ``annotations``;
    ``detector_boxes``: the predictions were made on detector boxes, so they are matched to people by OKS)."""
    truth = load_coco_instances(annotations, images, spec, require_keypoints=True)
    matched = pairs_of(predictions, truth, spec, detector_boxes)
    if per_keypoint:
        write_per_keypoint(matched, spec, cfg.data.input_size, Path(per_keypoint),
                           title=f"{Path(checkpoint).name} on {annotations.name}")  # fmt: skip
    if worst:
        count, folder = worst
        write_worst(matched, predictions.scores, truth, spec, count, Path(folder))
        try:
            write_teacher_worst(checkpoint, cfg, count, Path(folder))
        except DataError as error:  # e.g. the training data of the checkpoint is not on this machine
            print(f"note: no picture of the teacher's pseudo-labels: {error}")
