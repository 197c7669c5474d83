"""How good a semi-supervised method's pseudo-labels are, measured on unlabelled people whose ground truth training
never reads (a rendered dataset has it for everyone): ``pseudo_quality/*`` in a run's metrics.jsonl."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader

from trspose.data.datasets import TopDownDataset, collate_pose
from trspose.data.geometry import affine_points
from trspose.evaluation.pck import pck_hits
from trspose.methods.memory import PeopleViews


@dataclass
class PseudoLabelProbe:
    """Unlabelled people whose ground truth training never reads (a rendered dataset has it for everyone), kept to
    measure the pseudo-labels a semi-supervised method makes of them: the PCK@0.1 of the teacher's, the reviewer's
    and the learned target's keypoints, and the precision of the confidence mask (kept keypoints that are right).
    The probe predicts on the plain eval crop: the weak view without its random affine."""

    dataset: TopDownDataset  # eval transform
    batch_size: int  # the unlabelled batch size of training, so a per-batch keep-fraction cut is the same

    @torch.no_grad()
    def collect(self, method, device: torch.device) -> PseudoLabelHits | None:
        """Per person and keypoint: whether each source's pseudo-keypoint is right (PCK@0.1 of the longer box side),
        its confidence, and whether the target's mask keeps it; None for methods without pseudo-labels."""
        by_id = {inst.ann_id: inst for inst in self.dataset.instances}
        parts: dict[str, list[np.ndarray]] = {}
        # its own generator: the loader's base seed would otherwise be drawn from rank 0's global RNG mid-training
        loader = DataLoader(self.dataset, batch_size=self.batch_size, shuffle=False, collate_fn=collate_pose,
                            generator=torch.Generator())  # fmt: skip
        for batch in loader:
            images = batch.images.to(device)
            identity = torch.eye(2, 3, device=device).expand(len(images), 2, 3)  # no second view
            flipped = torch.zeros(len(images), dtype=torch.bool, device=device)
            crops = batch.crop_to_image.to(device)  # the one view is both the weak and the strong one
            views = PeopleViews(batch.ann_id.to(device), crops, crops)
            targets = method.pseudo_targets(images, identity, flipped, views)
            if not targets:
                return None
            people = [by_id[int(a)] for a in batch.ann_id]
            truth = np.stack([p.keypoints for p in people])  # (B, K, 3) image px
            sizes = np.array(
                [max(p.box[2], p.box[3]) for p in people]
            )  # PCK's normaliser, as pck_of_instances
            for name, target in targets.items():
                crop = self.dataset.codec.heatmap_to_input(target.peaks).cpu().numpy()  # (B, K, 2) crop px
                points = np.stack([affine_points(c, m) for c, m in zip(crop, batch.crop_to_image.numpy())])
                parts.setdefault(f"hit/{name}", []).append(
                    pck_hits(points, truth[..., :2], sizes, threshold=0.1)
                )
                parts.setdefault(f"confidence/{name}", []).append(target.confidence.cpu().numpy())
                parts.setdefault(f"peaks/{name}", []).append(target.peaks.cpu().numpy())
            parts.setdefault("kept", []).append(targets["target"].weight.cpu().numpy() > 0)
            parts.setdefault("labeled", []).append(truth[..., 2] > 0)
        joined = {key: np.concatenate(value) for key, value in parts.items()}
        sources = [key.split("/", 1)[1] for key in joined if key.startswith("hit/")]
        return PseudoLabelHits(
            hit={name: joined[f"hit/{name}"] for name in sources},
            confidence={name: joined[f"confidence/{name}"] for name in sources},
            peaks={name: joined[f"peaks/{name}"] for name in sources},
            kept=joined["kept"],
            labeled=joined["labeled"],
        )

    def measure(self, method, device: torch.device) -> dict[str, float]:
        """``pseudo_quality/...`` in percent of all labelled keypoints (PCK, kept fraction, reviewer right where
        the teacher is wrong and the reverse) or of the kept ones (mask precision); empty for methods without
        pseudo-labels."""
        found = self.collect(method, device)
        if found is None or not found.labeled.any():
            return {}
        hit, kept, seen = found.hit, found.kept, found.labeled
        metrics = {f"pseudo_quality/pck_{name}": 100.0 * hit[name][seen].mean() for name in hit}
        metrics["pseudo_quality/kept_fraction"] = 100.0 * kept[seen].mean()
        if (kept & seen).any():
            metrics["pseudo_quality/mask_precision"] = 100.0 * hit["target"][kept & seen].mean()
        if "reviewer" in hit:
            teacher, reviewer = hit["teacher"][seen], hit["reviewer"][seen]
            metrics["pseudo_quality/reviewer_right_teacher_wrong"] = 100.0 * (reviewer & ~teacher).mean()
            metrics["pseudo_quality/teacher_right_reviewer_wrong"] = 100.0 * (teacher & ~reviewer).mean()
        return {name: float(value) for name, value in metrics.items()}


@dataclass
class PseudoLabelHits:
    """What ``PseudoLabelProbe.collect`` found, (N people, K keypoints) arrays; by source ('teacher', 'reviewer',
    'target'): right or not, and the peak confidence."""

    hit: dict[str, np.ndarray]  # bool
    confidence: dict[str, np.ndarray]  # float
    peaks: dict[str, np.ndarray]  # (N, K, 2) heatmap px of the crop
    kept: np.ndarray  # bool, the target's mask
    labeled: np.ndarray  # bool, ground truth exists (only these count)
