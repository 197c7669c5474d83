"""Per-keypoint diagnostics: which joints a model gets wrong, and how.

Predictions made on ground-truth boxes are paired with the person of their box (``pair_by_annotation``: a
prediction that drifted onto a neighbour stays wrong, as in the training log's per-keypoint PCK); predictions made
on detector boxes are matched to ground-truth people image by image, greedily by OKS in order of prediction score
(``match_people``: COCO's matching, down to OKS 0.1 rather than COCO's thresholds of 0.5 and above, so that
poor predictions are still diagnosed; a person nothing reaches counts as missed). Over the pairs and the labelled keypoints (v > 0), per
keypoint:

- ``oks``: mean per-keypoint OKS similarity ``exp(-d^2 / (2 s^2 k^2))`` (COCO's sigmas and object scale);
- ``pck@0.05`` / ``pck@0.1``: fraction within 0.05 / 0.1 of the ground-truth box's longer side;
- ``error_px``: mean distance in crop pixels (the ground-truth box's top-down crop at the model's input size);
- ``swap_rate``: for left/right joints whose partner is also labelled, the fraction predicted at the partner's
  place instead of their own: OKS similarity to the partner's ground truth >= 0.5 and to their own < 0.5 (the
  "inversion" error of Ronchi & Perona, ICCV 2017; the left/right confusion that Keypoint-Mix targets). A bare
  "closer to the partner" test would count every side view, where both joints nearly coincide.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from trspose.data.geometry import box_to_center_scale
from trspose.data.transforms import BOX_PADDING
from trspose.io import write_bytes

METRICS = ("oks", "pck@0.05", "pck@0.1", "error_px", "swap_rate")
SWAP_SIMILARITY = 0.5  # Ronchi & Perona's threshold between "at this joint" and "not"
MATCH_MIN_OKS = 0.1  # detector boxes: a prediction with less OKS to every free person is matched to none


@dataclass
class MatchedPeople:
    """Prediction / ground-truth pairs: (N, K, 2) image pixels, (N, K) labelled mask, (N,) boxes' data."""

    predicted: np.ndarray  # (N, K, 2)
    truth: np.ndarray  # (N, K, 2)
    labeled: np.ndarray  # (N, K) bool
    box: np.ndarray  # (N, 4) ground-truth x, y, w, h
    area: np.ndarray  # (N,) ground-truth area (OKS scale)
    oks: np.ndarray  # (N,) OKS of each pair
    ann_id: np.ndarray  # (N,) ground-truth annotation id
    image_id: np.ndarray  # (N,)
    row: np.ndarray  # (N,) index of the matched prediction


def keypoint_similarity(predicted: np.ndarray, truth: np.ndarray, area: np.ndarray, sigmas) -> np.ndarray:
    """Per-keypoint OKS terms (..., K) of predictions and ground truth (..., K, 2), object areas (...)."""
    variances = (2.0 * np.asarray(sigmas, dtype=np.float64)) ** 2  # COCOeval's vars
    squared = ((np.asarray(predicted, float) - np.asarray(truth, float)) ** 2).sum(axis=-1)
    return np.exp(-squared / variances / (np.asarray(area, float)[..., None] + np.spacing(1)) / 2.0)


def match_people(predictions, instances, sigmas) -> MatchedPeople:
    """Match ``predictions`` (evaluation.inference.Predictions) to labelled ``instances`` image by image, greedily by
    OKS in order of the mean keypoint score (detector boxes). People no prediction reaches: :func:`unmatched`."""
    truth_by_image: dict[int, list] = {}
    for inst in instances:
        if (inst.keypoints[:, 2] > 0).any():
            truth_by_image.setdefault(int(inst.image_id), []).append(inst)
    pairs = []
    for image_id, people in truth_by_image.items():
        rows = np.flatnonzero(predictions.image_id == image_id)
        rows = rows[np.argsort(-predictions.scores[rows].mean(axis=1), kind="stable")]
        taken: set[int] = set()
        for row in rows:
            best, best_oks = None, 0.0
            for j, inst in enumerate(people):
                if j in taken:
                    continue
                labeled = inst.keypoints[:, 2] > 0
                terms = keypoint_similarity(
                    predictions.keypoints[row], inst.keypoints[:, :2], inst.area, sigmas
                )
                oks = float(terms[labeled].mean())
                if oks >= MATCH_MIN_OKS and (best is None or oks > best_oks):
                    best, best_oks = j, oks
            if best is not None:
                taken.add(best)
                pairs.append((row, people[best]))
    return _pairs(predictions, pairs, sigmas)


def pair_by_annotation(predictions, instances, sigmas) -> MatchedPeople:
    """Pair each prediction with the labelled instance whose box it was made on (same annotation id)."""
    by_id = {int(inst.ann_id): inst for inst in instances if (inst.keypoints[:, 2] > 0).any()}
    pairs = [(row, by_id[int(ann)]) for row, ann in enumerate(predictions.ann_id) if int(ann) in by_id]
    return _pairs(predictions, pairs, sigmas)


def _pairs(predictions, pairs: list, sigmas) -> MatchedPeople:
    """MatchedPeople of (prediction row, instance) pairs, with each pair's OKS over its labelled keypoints."""
    k = len(sigmas)
    if not pairs:
        none = np.zeros(0, np.int64)
        return MatchedPeople(np.zeros((0, k, 2), np.float32), np.zeros((0, k, 2), np.float32), np.zeros((0, k), bool),
                             np.zeros((0, 4)), np.zeros(0), np.zeros(0), none, none, none)  # fmt: skip
    predicted = np.stack([predictions.keypoints[row] for row, _ in pairs])
    truth = np.stack([inst.keypoints[:, :2] for _, inst in pairs])
    labeled = np.stack([inst.keypoints[:, 2] > 0 for _, inst in pairs])
    area = np.array([inst.area for _, inst in pairs], dtype=float)
    terms = keypoint_similarity(predicted, truth, area, sigmas)
    return MatchedPeople(
        predicted=predicted,
        truth=truth,
        labeled=labeled,
        box=np.stack([np.asarray(inst.box, float) for _, inst in pairs]),
        area=area,
        oks=np.array([terms[i][labeled[i]].mean() for i in range(len(pairs))]),
        ann_id=np.array([inst.ann_id for _, inst in pairs], dtype=np.int64),
        image_id=np.array([inst.image_id for _, inst in pairs], dtype=np.int64),
        row=np.array([row for row, _ in pairs], dtype=np.int64),
    )


def unmatched(matched: MatchedPeople, instances) -> list:
    """The labelled instances that no prediction was paired with (missed people)."""
    taken = set(matched.ann_id.tolist())
    return [inst for inst in instances if (inst.keypoints[:, 2] > 0).any() and int(inst.ann_id) not in taken]


def per_keypoint_metrics(
    matched: MatchedPeople, sigmas, flip_index: np.ndarray, input_size: tuple[int, int]
) -> dict[str, np.ndarray]:
    """Each of :data:`METRICS` as a (K,) array over the matched people (nan where a keypoint is never labelled)."""
    labeled = matched.labeled
    sigmas = np.asarray(sigmas, dtype=np.float64)
    distance = np.linalg.norm(matched.predicted - matched.truth, axis=-1)  # (N, K) image px
    size = matched.box[:, 2:].max(axis=1) if len(matched.box) else np.zeros(0)
    # crop px per image px: the crop's width covers the padded box width (box_to_center_scale)
    widths = np.array([box_to_center_scale(b, input_size, BOX_PADDING)[1][0] for b in matched.box])
    to_crop = input_size[1] / np.maximum(widths, 1e-6) if len(widths) else np.zeros(0)
    own = keypoint_similarity(matched.predicted, matched.truth, matched.area, sigmas)  # (N, K)
    partner = keypoint_similarity(
        matched.predicted, matched.truth[:, flip_index], matched.area, sigmas[flip_index]
    )
    paired = labeled & labeled[:, flip_index] & (np.arange(len(flip_index)) != flip_index)[None]

    def mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return (np.where(mask, values, 0.0).sum(axis=0) / mask.sum(axis=0)).astype(float)

    return {
        "oks": mean(own, labeled),
        "pck@0.05": mean(distance <= 0.05 * size[:, None], labeled),
        "pck@0.1": mean(distance <= 0.1 * size[:, None], labeled),
        "error_px": mean(distance * to_crop[:, None], labeled),
        "swap_rate": mean((partner >= SWAP_SIMILARITY) & (own < SWAP_SIMILARITY), paired),
    }


def format_table(names, metrics: dict[str, np.ndarray]) -> str:
    """A markdown table, one row per keypoint, plus the mean over keypoints."""
    lines = ["| keypoint | " + " | ".join(METRICS) + " |", "|---|" + "---:|" * len(METRICS)]
    for k, name in enumerate(names):
        lines.append(f"| {name} | " + " | ".join(_cell(m, metrics[m][k]) for m in METRICS) + " |")
    means = {m: np.nanmean(metrics[m]) if np.isfinite(metrics[m]).any() else np.nan for m in METRICS}
    lines.append("| **mean** | " + " | ".join(_cell(m, means[m]) for m in METRICS) + " |")
    return "\n".join(lines)


def _cell(metric: str, value: float) -> str:
    if not np.isfinite(value):
        return "-"
    return f"{value:.1f}" if metric == "error_px" else f"{100 * value:.1f}"


def plot_per_keypoint(names, metrics: dict[str, np.ndarray], path, title: str = "") -> None:
    """One PNG: bars per keypoint, one colour per metric (percent), and the crop-pixel error below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 6.5), height_ratios=[2, 1], sharex=True)
    x = np.arange(len(names))
    shares = [m for m in METRICS if m != "error_px"]
    width = 0.8 / len(shares)
    for i, metric in enumerate(shares):
        top.bar(
            x + (i - (len(shares) - 1) / 2) * width, 100 * np.nan_to_num(metrics[metric]), width, label=metric
        )
    top.set_ylabel("percent")
    top.set_ylim(0, 100)
    top.legend(ncol=len(shares), loc="upper center", fontsize=8)
    top.set_title(title or "per-keypoint diagnostics")
    top.grid(axis="y", alpha=0.3)
    bottom.bar(x, np.nan_to_num(metrics["error_px"]), 0.6, color="C4")
    bottom.set_ylabel("mean error (crop px)")
    bottom.grid(axis="y", alpha=0.3)
    bottom.set_xticks(x, names, rotation=45, ha="right")
    fig.tight_layout()
    encoded = io.BytesIO()
    fig.savefig(encoded, format="png", dpi=110)
    plt.close(fig)
    write_bytes(encoded.getbuffer(), path)
