"""Where a dataset's files are, and its people read from them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trspose.data.coco import PersonInstance, load_coco_instances
from trspose.data.keypoints import KeypointSpec


@dataclass
class DataFiles:
    """Resolved paths of one dataset."""

    root: Path
    train_annotations: Path
    train_images: Path
    val_annotations: Path
    val_images: Path
    val_boxes: Path | None
    unlabeled_images: Path | None = None
    unlabeled_boxes: Path | None = None
    category: str = ""
    """The keypoint category to read where the annotation files have several (``data.category``)."""

    @classmethod
    def under(cls, root: Path, category: str = "", **paths: str) -> DataFiles:
        """The files at ``paths`` (relative to ``root`` unless absolute; empty optional paths stay None)."""
        resolved = {
            name: (Path(p) if Path(p).is_absolute() else root / p) if p else None for name, p in paths.items()
        }
        return cls(root=root, category=category, **resolved)  # type: ignore[arg-type]  # required paths are set


def load_instances(files: DataFiles, spec: KeypointSpec, split: str) -> list[PersonInstance]:
    """The people of the 'train' split (labelled), or of 'val' (on detector boxes when the dataset has them)."""
    if split == "train":
        return load_coco_instances(files.train_annotations, files.train_images, spec, category=files.category)
    return load_coco_instances(
        files.val_annotations,
        files.val_images,
        spec,
        boxes_file=files.val_boxes,
        require_keypoints=files.val_boxes is None,
        category=files.category,
    )
