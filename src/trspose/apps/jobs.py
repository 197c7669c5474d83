"""The jobs behind the CLI subcommands eval and predict (train: ``engine/trainer.py::train``).

Each builds what it needs from the config stored in a checkpoint: the checkpoint is all they need.
"""

from __future__ import annotations

from pathlib import Path

from trspose.apps.drawing import draw_overlays
from trspose.apps.predictor import load_model
from trspose.data.coco import load_coco_instances, load_image_folder_with_boxes
from trspose.data.coco_checks import keypoint_category
from trspose.engine import build
from trspose.engine.distributed import DistributedContext, cleanup_distributed, setup_distributed
from trspose.errors import DataError
from trspose.evaluation.coco_eval import write_results_json
from trspose.evaluation.inference import pckh_of_instances, print_metrics_table
from trspose.evaluation.pck import head_segment
from trspose.io import read_json


def evaluate_checkpoint(
    checkpoint: str | Path, *, annotations: str | None = None, images: str | None = None, boxes: str | None = None,
    flip_test: bool | None = None, results_out: str | None = None, overlays: str | None = None, num_overlays: int = 12,
    per_keypoint: str | None = None, worst: tuple[int, str] | None = None,
) -> dict:  # fmt: skip
    """COCO keypoint AP (percent) of a checkpoint on its validation set or on the given files."""
    ctx = setup_distributed()
    try:
        cfg, model = load_model(checkpoint)
        model.to(ctx.device)
        if flip_test is not None:
            cfg.eval.flip_test = flip_test
        spec = build.keypoint_spec(cfg)
        if annotations:
            ann, img = Path(annotations), Path(images or Path(annotations).parent.parent / "images" / "val")
        else:
            files = build.resolve_data(cfg, ctx, progress=False)
            ann, img = files.val_annotations, files.val_images
            boxes = boxes or (str(files.val_boxes) if files.val_boxes else None)
        instances = load_coco_instances(ann, img, spec, boxes_file=boxes, require_keypoints=boxes is None,
                                        category=cfg.data.category)  # fmt: skip
        evaluator = build.build_evaluator(cfg, instances, annotations=ann, oks_nms=boxes is not None)
        predictions = evaluator.predict(model, ctx, progress=True)
        if not ctx.is_main:
            return {}
        # what is scored (after OKS-NMS with detector boxes), written and drawn: one list; every image counts
        results = evaluator.results(predictions)
        metrics = evaluator.score_results(results)
        segment = head_segment(spec.names)
        if (
            segment is not None and boxes is None
        ):  # the MPII protocol's PCKh@0.5 beside AP (ground-truth boxes)
            metrics["PCKh"] = 100.0 * pckh_of_instances(predictions, instances, segment)
        if results_out:  # under the file's own category id, so that pycocotools scores them against it
            category = keypoint_category(
                read_json(ann, "annotation file")["categories"], ann, cfg.data.category
            )
            write_results_json([{**r, "category_id": category["source_id"]} for r in results], results_out)
        if overlays:
            paths = {inst.image_id: inst.image_path for inst in instances}
            names = {image_id: Path(path).stem for image_id, path in paths.items()}
            grid = draw_overlays(results, paths, names, spec, Path(overlays),
                                 score_threshold=0.3, max_images=num_overlays)  # fmt: skip
            drawn = len({r["image_id"] for r in results})
            drawn = min(drawn, num_overlays) if num_overlays else drawn  # draw_overlays' max_images
            print(f"predicted skeletons on {drawn} validation images: {grid}")
            _hint_if_nothing_drawn(results, 0.3, "the overlays")
        print_metrics_table(metrics, title=f"{Path(checkpoint).name} on {ann.name}")
        if per_keypoint or worst:
            from trspose.apps.diagnostics import write_diagnostics

            write_diagnostics(checkpoint, cfg, predictions, ann, img, spec, per_keypoint=per_keypoint,
                              worst=worst, detector_boxes=boxes is not None)  # fmt: skip
        return metrics
    finally:
        cleanup_distributed()


def predict_images(
    checkpoint: str | Path,
    inputs: list[str],
    *,
    boxes: str | None,
    out_dir: str | Path,
    score_threshold: float = 0.3,
    max_images: int = 0,
) -> Path:
    """Predict people in images (or folders of images); write COCO-style results and skeleton overlays."""
    cfg, model = load_model(checkpoint)
    spec = build.keypoint_spec(cfg)
    instances, file_names = load_image_folder_with_boxes(inputs, boxes)
    if max_images:
        keep = set(sorted({inst.image_id for inst in instances})[:max_images])
        instances = [inst for inst in instances if inst.image_id in keep]
    if not instances:
        raise DataError(f"no images found in {inputs}; pass image files (.jpg/.png) or folders holding them")
    evaluator = build.build_evaluator(cfg, instances)
    predictions = evaluator.predict(model, DistributedContext(), progress=True)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = evaluator.results(predictions)
    for r in results:
        r["file_name"] = file_names[r["image_id"]]
    write_results_json(results, out_dir / "predictions.json")
    paths = {inst.image_id: inst.image_path for inst in instances}
    names = {image_id: Path(name).stem for image_id, name in file_names.items()}
    draw_overlays(results, paths, names, spec, out_dir, score_threshold=score_threshold)
    print(
        f"wrote {len(results)} people from {len({r['image_id'] for r in results})} images to {out_dir}/predictions.json and {out_dir}/overlays/"
    )
    _hint_if_nothing_drawn(results, score_threshold, "the overlays", "--score-threshold")
    return out_dir


def _hint_if_nothing_drawn(results: list[dict], threshold: float, what: str, option: str = "") -> None:
    """Say so when no keypoint scores above the drawing threshold (e.g. after a short training): the overlays
    are then bare images, which looks like a bug in drawing rather than a weak model."""
    best = max((max(r["keypoints"][2::3]) for r in results), default=None)
    if best is not None and best <= threshold:
        lower = f"; lower {option} to see them" if option else ""
        print(
            f"note: every predicted keypoint scores at most {best:.2f}, not above the drawing threshold "
            f"{threshold}, so {what} show no skeleton{lower} (a model this unsure needs more training)"
        )


__all__ = ["evaluate_checkpoint", "predict_images"]
