"""Command line: ``trspose {train,eval,predict,export,make-dataset,dataset-path,preview-dataset,preview-training}``. No logic lives here.

Every user-facing problem is a ``TrsposeError``: printed as one ``error: ...`` line, exit status 2.
"""

from __future__ import annotations

import argparse
import errno
import sys
from pathlib import Path

from trspose.errors import ConfigError, TrsposeError
from trspose.io import free_megabytes, os_reason
from trspose.paths import configure_body_model_cache


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trspose", description="Semi-supervised 2D human pose estimation.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train from a YAML config (runs unmodified under torchrun)")
    p.add_argument("config", help="YAML file overriding the defaults (see configs/)")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.steps=500 name=my_run")
    p.add_argument("--resume", action="store_true", help="continue output_dir/name from checkpoints/last.pt")
    p.add_argument(
        "--overwrite", action="store_true", help="delete an existing run folder of the same name first"
    )

    p = sub.add_parser("eval", help="COCO keypoint AP of a checkpoint (the config travels inside it)")
    p.add_argument("checkpoint")
    p.add_argument(
        "--annotations", help="COCO keypoint JSON (default: the validation set of the training config)"
    )
    p.add_argument("--images", help="image folder for --annotations")
    p.add_argument("--boxes", help="detection-results JSON to use instead of ground-truth boxes")
    p.add_argument("--no-flip", action="store_true", help="disable the flip test")
    p.add_argument("--results", help="also write the COCO results JSON here")
    p.add_argument(
        "--overlays", help="also draw the predicted skeletons of the first images into this folder"
    )
    p.add_argument("--num-overlays", type=int, default=12, help="images drawn with --overlays")
    p.add_argument(
        "--per-keypoint",
        metavar="DIR",
        help="per-keypoint OKS, PCK@0.05/0.1, crop-pixel error and left/right swap rate: table, "
        "DIR/per_keypoint.json and DIR/per_keypoint.png",
    )
    p.add_argument(
        "--worst",
        nargs=2,
        metavar=("N", "DIR"),
        help="DIR/worst.png: the N lowest-OKS people, prediction beside ground truth (semi-supervised "
        "checkpoints: also DIR/worst_pseudo_labels.png, the teacher on training people)",
    )

    p = sub.add_parser(
        "predict", help="predict skeletons on images; writes predictions.json and PNG overlays"
    )
    p.add_argument(
        "checkpoint", help="a checkpoint (.pt) or an exported model.onnx (its model.json beside it)"
    )
    p.add_argument(
        "inputs", nargs="+", help="image files, folders of images, and/or video files (.mp4, .avi, .mov, ...)"
    )
    p.add_argument(
        "--boxes",
        help="JSON of person boxes per file name (images) or per frame index (one video); without it each image "
        "is one person, and a video's person is followed from frame to frame",
    )
    p.add_argument("--every", type=int, default=1, help="videos: predict every Nth frame")
    p.add_argument("--max-frames", type=int, default=0, help="videos: at most N predicted frames; 0: all")
    p.add_argument("--out", default="predictions", help="output folder (default: predictions)")
    p.add_argument("--score-threshold", type=float, default=0.3, help="hide keypoints scored below this")
    p.add_argument(
        "--max-images", type=int, default=0, help="only the first N images (sorted by name); 0: all"
    )

    p = sub.add_parser("export", help="export a checkpoint to ONNX (model.onnx + model.json sidecar)")
    p.add_argument("checkpoint")
    p.add_argument("--format", default="onnx", choices=["onnx"], help="export format (onnx)")
    p.add_argument("--out", help="output folder (default: the checkpoint's folder)")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (>= 18)")

    p = sub.add_parser("make-dataset", help="generate the built-in synthetic people dataset (COCO format)")
    p.add_argument("--size", default="demo", help="tiny, demo or default")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="output folder (default: the project cache, reused when present)")
    p.add_argument("--workers", type=int, help="worker processes (default: CPU count)")
    p.add_argument("--force", action="store_true", help="regenerate even if a complete copy exists")
    p.add_argument("--preview", help="also write preview grids and statistics into this folder")
    p.add_argument("--keypoints", default="coco17", choices=["coco17", "mpii16"],
                   help="keypoint layout of the annotations (the images are the same)")  # fmt: skip

    p = sub.add_parser(
        "dataset-path", help="print the folder of a synthetic dataset (generating it if needed)"
    )
    p.add_argument("--size", default="demo")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keypoints", default="coco17", choices=["coco17", "mpii16"])

    p = sub.add_parser(
        "preview-training", help="grids of the augmented crops a config trains on, with their targets"
    )
    p.add_argument("config", help="YAML config, as for train")
    p.add_argument("overrides", nargs="*", help="dotted overrides, as for train")
    p.add_argument("--out", default="preview_training", help="output folder (default: preview_training)")
    p.add_argument("--num", type=int, default=16, help="crops per grid")

    p = sub.add_parser(
        "convert",
        help="turn DeepLabCut, SLEAP or Label Studio labels into a dataset folder, or MPII / AI "
        "Challenger annotations into a COCO keypoints file",
    )
    p.add_argument("input", help="DeepLabCut's CollectedData_*.csv, a SLEAP .slp, a Label Studio JSON export, or "
                   "MPII's / AI Challenger's annotation JSON")  # fmt: skip
    p.add_argument("--out", required=True, help="the dataset folder to write (labelling tools) or the COCO "
                   "keypoints JSON (MPII, AI Challenger)")  # fmt: skip
    p.add_argument("--format", default="auto", choices=["auto", "dlc", "sleap", "labelstudio", "mpii", "aic"],
                   help="default: from the file")  # fmt: skip
    p.add_argument("--images", help="the folder of the images (MPII, AI Challenger: required; labelling tools: "
                   "where to look for images not found where the labels say)")  # fmt: skip
    p.add_argument("--val-fraction", type=float, default=0.1, help="labelled frames held out for validation")
    p.add_argument("--seed", type=int, default=0, help="seed of the validation frames")
    p.add_argument("--unlabeled-frames", type=int, default=0, metavar="N",
                   help="also write N frames nobody labelled from the labels' videos (images/unlabeled)")  # fmt: skip

    p = sub.add_parser("preview-dataset", help="grids of images and crops with skeletons, and statistics")
    p.add_argument("root", help="dataset folder (with images/ and annotations/)")
    p.add_argument("--out", default="preview", help="output folder")
    p.add_argument("--split", default="val")
    p.add_argument("--num-images", type=int, default=12)
    return parser


def _run(args: argparse.Namespace) -> None:
    if args.command == "train":
        from trspose.config import load_config
        from trspose.engine.trainer import train

        cfg = load_config(args.config, args.overrides)
        train(cfg, resume=args.resume, overwrite=args.overwrite)
    elif args.command == "eval":
        from trspose.apps import jobs

        jobs.evaluate_checkpoint(
            args.checkpoint, annotations=args.annotations, images=args.images, boxes=args.boxes,
            flip_test=False if args.no_flip else None, results_out=args.results, overlays=args.overlays,
            num_overlays=args.num_overlays, per_keypoint=args.per_keypoint, worst=_worst(args.worst),
        )  # fmt: skip
    elif args.command == "predict":
        from trspose.apps import jobs
        from trspose.apps.video import is_video, predict_video

        videos = [path for path in args.inputs if is_video(path)]
        images = [path for path in args.inputs if not is_video(path)]
        if args.boxes and videos and (images or len(videos) > 1):
            raise ConfigError("--boxes with videos is per frame of one video: give that video alone")
        for video in videos:
            predict_video(args.checkpoint, video, out_dir=args.out, boxes=args.boxes, every=args.every,
                          max_frames=args.max_frames, score_threshold=args.score_threshold)  # fmt: skip
        if images:
            jobs.predict_images(args.checkpoint, images, boxes=args.boxes, out_dir=args.out,
                                score_threshold=args.score_threshold, max_images=args.max_images)  # fmt: skip
    elif args.command == "export":
        from trspose.apps.export import export_onnx

        path = export_onnx(args.checkpoint, args.out, opset=args.opset)
        print(f"wrote {path} and {path.with_suffix('.json')}")
    elif args.command == "make-dataset":
        from trspose.data.synthetic import ensure_dataset

        root = ensure_dataset(args.size, seed=args.seed, root=args.out, workers=args.workers, force=args.force,
                              keypoints=args.keypoints)  # fmt: skip
        print(f"dataset ready: {root}")
        if args.preview:
            _preview(root, Path(args.preview), "val", 12)
    elif args.command == "dataset-path":
        from trspose.data.synthetic import ensure_dataset

        print(ensure_dataset(args.size, seed=args.seed, progress=False, keypoints=args.keypoints))
    elif args.command == "preview-training":
        from trspose.apps.training_preview import write_training_preview
        from trspose.config import load_config

        for path in write_training_preview(
            load_config(args.config, args.overrides), Path(args.out), args.num
        ):
            print(f"wrote {path}")
    elif args.command == "convert":
        from trspose.data.convert import convert

        convert(
            args.input,
            args.out,
            args.format,
            args.images,
            args.val_fraction,
            args.seed,
            args.unlabeled_frames,
        )
    elif args.command == "preview-dataset":
        _preview(Path(args.root), Path(args.out), args.split, args.num_images)


def _worst(values: list[str] | None) -> tuple[int, str] | None:
    if values is None:
        return None
    count, folder = values
    if not (count.isdecimal() and len(count) < 10) or int(count) < 1:
        raise ConfigError(f"--worst N DIR: N must be a positive whole number, got {count!r}")
    return int(count), folder


def _preview(root: Path, out: Path, split: str, num_images: int) -> None:
    from trspose.apps.drawing import preview_dataset
    from trspose.data.synthetic import dataset_statistics, format_statistics

    for path in preview_dataset(root, out, split=split, num_images=num_images):
        print(f"wrote {path}")
    print(format_statistics(dataset_statistics(root)))


def one_line(error: Exception) -> str:
    """The message of ``error`` on one line; an error re-raised from a DataLoader worker carries the worker's
    traceback, whose last line is the original message."""
    message = str(error).strip()
    if "Original Traceback" in message:
        message = message.splitlines()[-1].split(": ", 1)[-1]
    return " ".join(message.split())


def main(argv: list[str] | None = None) -> int:
    configure_body_model_cache()
    args = _parser().parse_args(argv)
    try:
        _run(args)
    except TrsposeError as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 2
    except OSError as error:  # a write outside trspose.io (a library's own file), e.g. on a full disk
        where = f"{error.filename}: " if error.filename else ""
        full = error.errno in (errno.ENOSPC, errno.EDQUOT)
        free = free_megabytes(error.filename or ".") if full else None
        print(f"error: {where}{os_reason(error)}" + (f" ({free} MB free)" if free is not None else ""),
              file=sys.stderr)  # fmt: skip
        return 2
    except KeyboardInterrupt:
        print("interrupted; the last checkpoint is intact: continue with --resume (a run stopped before it logged "
              "anything is removed: start it again)", file=sys.stderr)  # fmt: skip
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
