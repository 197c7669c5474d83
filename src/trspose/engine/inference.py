"""Inference over a set of person instances and its scoring (COCO keypoint AP, PCK): ``Evaluator``.

Prediction: crop (eval transform) -> heatmaps (optionally averaged with the flipped crop's) -> decode to
crop pixels -> map to image pixels with the crop's affine. Under DDP each rank predicts a shard and rank 0
gathers everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from trspose.data.codec import HeatmapCodec, flip_back
from trspose.data.datasets import TopDownDataset, collate_pose
from trspose.data.geometry import affine_points
from trspose.engine.distributed import DistributedContext, all_gather_objects
from trspose.evaluation.coco_eval import evaluate_coco_keypoints, make_results
from trspose.evaluation.pck import pck, pck_hits


@dataclass
class Predictions:
    """Per instance: ids, keypoints in original-image pixels, per-keypoint scores."""

    ann_id: np.ndarray  # (N,)
    image_id: np.ndarray  # (N,)
    keypoints: np.ndarray  # (N, K, 2) image pixels
    scores: np.ndarray  # (N, K)
    box_score: np.ndarray  # (N,)

    @staticmethod
    def concatenate(parts: list[Predictions]) -> Predictions:
        fields = {
            name: np.concatenate([getattr(p, name) for p in parts])
            for name in Predictions.__dataclass_fields__
        }
        _, unique = np.unique(fields["ann_id"], return_index=True)  # shards never overlap; keep order stable
        return Predictions(**{name: value[np.sort(unique)] for name, value in fields.items()})


@torch.no_grad()
def predict_heatmaps(model: nn.Module, images: torch.Tensor, flip_index: np.ndarray | None) -> torch.Tensor:
    """Heatmaps of the model's main output; with ``flip_index`` averaged with the flipped image's."""
    heatmaps = model(images).heatmaps.float()  # (B, K, h, w)
    if flip_index is not None:
        flipped = flip_back(model(torch.flip(images, dims=[3])).heatmaps.float(), flip_index)
        heatmaps = 0.5 * (heatmaps + shift_right(flipped, 1.0 - heatmaps.shape[3] / images.shape[3]))
    return heatmaps


def shift_right(heatmaps: torch.Tensor, offset: float) -> torch.Tensor:
    """Shift heatmaps right by a fraction of a pixel (linear interpolation; the left column is repeated).

    Mirroring a crop maps input x to W-1-x, which lands at heatmap x' = w - w/W - x*w/W, while mirroring a
    heatmap maps x to w-1-x: a flipped-back heatmap sits (1 - w/W) heatmap pixels too far left
    (HRNet corrects this with a whole-pixel shift; the exact offset is 0.75 px at stride 4).
    """
    previous = torch.cat([heatmaps[..., :1], heatmaps[..., :-1]], dim=-1)  # value at x - 1
    return (1.0 - offset) * heatmaps + offset * previous


@torch.no_grad()
def predict_crops(
    model: nn.Module,
    images: torch.Tensor,
    crop_to_image: np.ndarray,
    codec: HeatmapCodec,
    flip_index: np.ndarray | None,
    decode: str = "dark",
) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints (B, K, 2) in image pixels and scores (B, K) of normalised crops (B, 3, H, W), whose crop ->
    image affines are ``crop_to_image`` (B, 2, 3)."""
    heatmaps = predict_heatmaps(model, images, flip_index)
    coords, scores = codec.decode(heatmaps, decode_method=decode)  # (B, K, 2) crop pixels, (B, K)
    coords, scores = coords.cpu().numpy(), scores.cpu().numpy()
    in_image = np.stack([affine_points(c, m) for c, m in zip(coords, crop_to_image)])
    return in_image.astype(np.float32), scores.astype(np.float32)


@torch.no_grad()
def predict(
    model: nn.Module,
    dataset,
    codec: HeatmapCodec,
    *,
    ctx: DistributedContext,
    batch_size: int,
    flip_index: np.ndarray | None,
    decode: str = "dark",
    workers: int = 0,
    progress: bool = False,
) -> Predictions:
    """Predict every instance of ``dataset`` (a TopDownDataset with the eval transform)."""
    was_training = model.training
    model.eval()
    shard = Subset(dataset, list(range(ctx.rank, len(dataset), ctx.world_size)))
    loader = DataLoader(
        shard, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate_pose
    )
    parts: list[Predictions] = []
    for batch in tqdm(loader, desc="predict", disable=not (progress and ctx.is_main), leave=False):
        in_image, scores = predict_crops(
            model, batch.images.to(ctx.device), batch.crop_to_image.numpy(), codec, flip_index, decode
        )
        parts.append(
            Predictions(
                ann_id=batch.ann_id.numpy(),
                image_id=batch.image_id.numpy(),
                keypoints=in_image,
                scores=scores,
                box_score=batch.box_score.numpy(),
            )
        )
    model.train(was_training)
    local = Predictions.concatenate(parts) if parts else None
    gathered = [p for p in all_gather_objects(local) if p is not None]
    return Predictions.concatenate(gathered)


def keypoint_results(predictions: Predictions, sigmas, *, oks_nms: bool = False) -> list[dict]:
    """COCO keypoint results of ``predictions``, after OKS-NMS (threshold 0.9) when ``oks_nms`` (detector
    boxes): exactly what :func:`coco_metrics` scores, so write these when the results should match a table."""
    return make_results(
        predictions.image_id, predictions.keypoints, predictions.scores, predictions.box_score,
        nms_threshold=0.9 if oks_nms else None, sigmas=sigmas,
    )  # fmt: skip


def coco_metrics(
    predictions: Predictions, ground_truth, sigmas, *, oks_nms: bool = False, image_ids=None
) -> dict[str, float]:
    """COCO keypoint AP/AR (fractions) of ``predictions`` against a COCO ground-truth file or object.

    Every image of the ground truth counts (or only ``image_ids``, e.g. an ``eval.max_images`` subset), not
    just the images that have predictions: with detector boxes, the people in an image where the detector
    found nobody are misses.
    """
    results = keypoint_results(predictions, sigmas, oks_nms=oks_nms)
    return evaluate_coco_keypoints(ground_truth, results, sigmas=sigmas, image_ids=image_ids)


def pck_metric(predictions: Predictions, instances, threshold: float = 0.1) -> float:
    """PCK of ``predictions`` on labelled ``instances`` (matched by annotation id), normalised by the longer box
    side."""
    return pck_of_instances(predictions, instances, threshold)[0]


def pck_of_instances(predictions: Predictions, instances, threshold: float = 0.1) -> tuple[float, np.ndarray]:
    """Overall and per-keypoint (K,) PCK of ``predictions`` made on the boxes of labelled ``instances``."""
    by_id = {inst.ann_id: inst for inst in instances}
    gt = np.stack([by_id[int(a)].keypoints for a in predictions.ann_id])  # (N, K, 3)
    sizes = np.array([max(by_id[int(a)].box[2], by_id[int(a)].box[3]) for a in predictions.ann_id])
    overall, per_keypoint = pck(
        predictions.keypoints, gt[..., :2], gt[..., 2] > 0, sizes, threshold=threshold
    )
    return float(overall), per_keypoint


@dataclass
class Evaluator:
    """One fixed set of people to predict and score, with how to predict them (codec, flip test, decoding): the
    validation set, the labelled hold-out slice, a checkpoint's evaluation files or images to predict."""

    dataset: TopDownDataset  # eval transform
    codec: HeatmapCodec
    flip_index: np.ndarray | None  # the keypoints' left/right partners for the flip test; None: no flip test
    decode: str
    batch_size: int
    sigmas: np.ndarray  # COCO OKS sigmas of the keypoints
    annotations: Path | None = None  # the COCO ground truth that ``score`` reads
    oks_nms: bool = False  # detector boxes: OKS-NMS before scoring, as COCO evaluation does
    image_ids: list[int] | None = None  # the images scored (eval.max_images); None: every image of the file

    def predict(self, model: nn.Module, ctx: DistributedContext, progress: bool = False) -> Predictions:
        return predict(model, self.dataset, self.codec, ctx=ctx, batch_size=self.batch_size,
                       flip_index=self.flip_index, decode=self.decode, progress=progress)  # fmt: skip

    def results(self, predictions: Predictions) -> list[dict]:
        """The COCO keypoint results that ``score`` scores (after OKS-NMS with detector boxes)."""
        return keypoint_results(predictions, self.sigmas, oks_nms=self.oks_nms)

    def score(self, predictions: Predictions) -> dict[str, float]:
        """COCO keypoint AP/AR in percent against ``annotations`` (every image of it, or ``image_ids``)."""
        return self.score_results(self.results(predictions))

    def score_results(self, results: list[dict]) -> dict[str, float]:
        """``score`` of results already made by ``results``."""
        coco = evaluate_coco_keypoints(
            self.annotations, results, sigmas=self.sigmas, image_ids=self.image_ids
        )
        return {name: 100.0 * value for name, value in coco.items()}

    def validation_metrics(self, model: nn.Module, ctx: DistributedContext, progress: bool = False) -> dict:
        """``val/AP``... and the PCK@0.1 of each keypoint ``val_pck/<name>`` (percent; keypoints never labelled
        in the set are left out) of ``model``; empty on ranks other than 0."""
        predictions = self.predict(model, ctx, progress)
        if not ctx.is_main:
            return {}
        metrics = {f"val/{name}": value for name, value in self.score(predictions).items()}
        _, per_keypoint = pck_of_instances(predictions, self.dataset.instances, threshold=0.1)
        names = self.dataset.spec.names
        metrics.update(
            {f"val_pck/{n}": 100.0 * float(v) for n, v in zip(names, per_keypoint) if np.isfinite(v)}
        )
        return metrics

    def pck(self, model: nn.Module, ctx: DistributedContext) -> float:
        """PCK@0.1 (percent) of ``model`` on this set's labelled people."""
        return 100.0 * pck_metric(self.predict(model, ctx), self.dataset.instances)


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
            targets = method.pseudo_targets(images, identity, flipped)
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
            parts.setdefault("labelled", []).append(truth[..., 2] > 0)
        joined = {key: np.concatenate(value) for key, value in parts.items()}
        sources = [key.split("/", 1)[1] for key in joined if key.startswith("hit/")]
        return PseudoLabelHits(
            hit={name: joined[f"hit/{name}"] for name in sources},
            confidence={name: joined[f"confidence/{name}"] for name in sources},
            peaks={name: joined[f"peaks/{name}"] for name in sources},
            kept=joined["kept"],
            labelled=joined["labelled"],
        )

    def measure(self, method, device: torch.device) -> dict[str, float]:
        """``pseudo_quality/...`` in percent of all labelled keypoints (PCK, kept fraction, reviewer right where
        the teacher is wrong and the reverse) or of the kept ones (mask precision); empty for methods without
        pseudo-labels."""
        found = self.collect(method, device)
        if found is None or not found.labelled.any():
            return {}
        hit, kept, seen = found.hit, found.kept, found.labelled
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
    labelled: np.ndarray  # bool, ground truth exists (only these count)


METRIC_ORDER = ("AP", "AP50", "AP75", "APm", "APl", "AR")


def print_metrics_table(metrics: dict, title: str) -> None:
    """A small markdown table of the COCO keypoint metrics (keys with or without the 'val/' prefix)."""
    values = {k.split("/")[-1]: v for k, v in metrics.items()}
    names = [n for n in METRIC_ORDER if n in values]
    print(f"\n{title}")
    print("| " + " | ".join(names) + " |")
    print("|" + "---|" * len(names))
    print("| " + " | ".join(f"{values[n]:.1f}" for n in names) + " |")
