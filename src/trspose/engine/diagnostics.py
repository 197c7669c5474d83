"""What a model gets wrong: per-keypoint diagnostics and the worst-predicted people (``trspose eval
--per-keypoint DIR``, ``--worst N DIR``).

For semi-supervised checkpoints ``--worst`` also draws the teacher's pseudo-labels on the people of the training
split that it scores worst: on the synthetic data those people have ground truth, which training never reads but
this picture can, so it shows what the teacher gets wrong and how confident it is about it.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from trspose.data.coco import load_coco_instances, load_image, write_json
from trspose.evaluation.per_keypoint import (
    MatchedPeople,
    format_table,
    match_people,
    per_keypoint_metrics,
    plot_per_keypoint,
)
from trspose.visualize import crop_person, draw_pose, save_grid

PANEL_HEIGHT = 256  # crops are drawn this tall, whatever the model's input size


def write_per_keypoint(predictions, instances, spec, input_size, out_dir: Path, title: str) -> dict:
    """``per_keypoint.json`` and ``per_keypoint.png`` in ``out_dir``; prints the table; returns the metrics."""
    matched = match_people(predictions, instances, spec.sigmas)
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
) -> Path:
    """A grid of the ``count`` lowest-OKS people: prediction (with its confidences) beside the ground truth."""
    by_ann = {inst.ann_id: inst for inst in instances}
    panels = []
    for i in np.argsort(matched.oks, kind="stable")[:count]:
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
    return save_grid(panels, path, columns=6, max_width=1600)


def write_worst(predictions, instances, spec, count: int, out_dir: Path, *, threshold: float = 0.3) -> Path:
    """``worst.png``: the validation people with the lowest OKS, prediction beside ground truth."""
    matched = match_people(predictions, instances, spec.sigmas)
    path = draw_worst(matched, predictions.scores, instances, spec, count, out_dir / "worst.png",
                      what="model", threshold=threshold)  # fmt: skip
    print(f"the {min(count, len(matched.oks))} lowest-OKS validation people: {path}")
    return path


def write_teacher_worst(checkpoint, cfg, count: int, out_dir: Path, max_people: int = 512) -> Path | None:
    """``worst_pseudo_labels.png`` for semi-supervised checkpoints: the teacher's pseudo-labels on the training
    split's people (the unlabelled pool) with the lowest OKS against their hidden ground truth, confidences
    thresholded at ``method.confidence_threshold`` (the mask training applies). None for other methods."""
    from trspose.engine import build
    from trspose.engine.checkpoint import load_checkpoint
    from trspose.engine.distributed import DistributedContext
    from trspose.engine.evaluate import predict

    if cfg.method.name == "supervised" or Path(checkpoint).suffix.lower() == ".onnx":
        return None
    state = load_checkpoint(checkpoint)
    bare = build.bare_config(cfg)
    method = build.build_method(bare, build.build_model(bare))
    method.load_state_dict(state["method"])
    teacher = method.candidates().get("teacher")
    if teacher is None:
        return None
    spec = build.keypoint_spec(cfg)
    files = build.resolve_data(cfg, progress=False)
    pool = [inst for inst in load_coco_instances(files.train_annotations, files.train_images, spec)
            if (inst.keypoints[:, 2] > 0).any()][:max_people]  # fmt: skip
    if not pool:
        return None
    predictions = predict(
        teacher.eval(), build.build_dataset(cfg, pool, train=False), build.build_codec(cfg),
        ctx=DistributedContext(), batch_size=cfg.eval.batch_size, flip_index=None, decode=cfg.eval.decode,
    )  # fmt: skip
    matched = match_people(predictions, pool, spec.sigmas)
    path = draw_worst(matched, predictions.scores, pool, spec, count, out_dir / "worst_pseudo_labels.png",
                      what="teacher", threshold=cfg.method.confidence_threshold)  # fmt: skip
    print(
        f"the teacher's {min(count, len(matched.oks))} worst pseudo-labels on {len(pool)} training people: {path}"
    )
    return path


def write_diagnostics(
    checkpoint, cfg, predictions, annotations: Path, images: Path, spec, *, per_keypoint: str | None,
    worst: tuple[int, str] | None,
) -> None:  # fmt: skip
    """The per-keypoint report and/or the worst cases of an evaluation (ground truth read from ``annotations``)."""
    truth = load_coco_instances(annotations, images, spec, require_keypoints=True)
    if per_keypoint:
        write_per_keypoint(predictions, truth, spec, cfg.data.input_size, Path(per_keypoint),
                           title=f"{Path(checkpoint).name} on {annotations.name}")  # fmt: skip
    if worst:
        count, folder = worst
        write_worst(predictions, truth, spec, count, Path(folder))
        write_teacher_worst(checkpoint, cfg, count, Path(folder))
