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
from trspose.evaluation.coco_eval import METRIC_NAMES, evaluate_coco_keypoints, make_results
from trspose.evaluation.pck import head_segment, pck, pckh


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
    crop_points, peak_scores = coords.cpu().numpy(), scores.cpu().numpy()
    in_image = np.stack([affine_points(c, m) for c, m in zip(crop_points, crop_to_image)])
    return in_image.astype(np.float32), peak_scores.astype(np.float32)


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
    boxes): exactly what :meth:`Evaluator.score` scores, so write these when the results should match a table."""
    return make_results(
        predictions.image_id, predictions.keypoints, predictions.scores, predictions.box_score,
        nms_threshold=0.9 if oks_nms else None, sigmas=sigmas,
    )  # fmt: skip


def pck_metric(predictions: Predictions, instances, threshold: float = 0.1) -> float:
    """PCK of ``predictions`` on labelled ``instances`` (matched by annotation id), normalised by the longer box
    side."""
    return pck_of_instances(predictions, instances, threshold)[0]


def pckh_of_instances(predictions: Predictions, instances, segment: tuple[int, int]) -> float:
    """PCKh@0.5 of ``predictions`` made on the boxes of labelled ``instances``, normalised by their head segments."""
    by_id = {inst.ann_id: inst for inst in instances}
    gt = np.stack([by_id[int(a)].keypoints for a in predictions.ann_id])  # (N, K, 3)
    overall, _ = pckh(predictions.keypoints, gt[..., :2], gt[..., 2] > 0, segment, threshold=0.5)
    return float(overall)


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
    category: str = ""  # the keypoint category of ``annotations`` where it has several (data.category)

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
            self.annotations, results, sigmas=self.sigmas, image_ids=self.image_ids, category=self.category
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
        segment = head_segment(names)
        if (
            segment is not None and not self.oks_nms
        ):  # beside AP, on ground-truth boxes (detections have no heads)
            metrics["val/PCKh"] = 100.0 * pckh_of_instances(predictions, self.dataset.instances, segment)
        metrics.update(
            {f"val_pck/{n}": 100.0 * float(v) for n, v in zip(names, per_keypoint) if np.isfinite(v)}
        )
        return metrics

    def pck(self, model: nn.Module, ctx: DistributedContext) -> float:
        """PCK@0.1 (percent) of ``model`` on this set's labelled people."""
        return 100.0 * pck_metric(self.predict(model, ctx), self.dataset.instances)


def print_metrics_table(metrics: dict, title: str) -> None:
    """A small markdown table of the COCO keypoint metrics AP to AR (keys with or without the 'val/' prefix)."""
    values = {k.split("/")[-1]: v for k, v in metrics.items()}
    names = [n for n in (*METRIC_NAMES[:6], "PCKh") if n in values]  # AP, AP50, AP75, APm, APl, AR (, PCKh)
    print(f"\n{title}")
    print("| " + " | ".join(names) + " |")
    print("|" + "---|" * len(names))
    print("| " + " | ".join(f"{values[n]:.1f}" for n in names) + " |")
