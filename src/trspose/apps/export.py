"""Export a trained model to ONNX (``trspose.apps.predictor`` runs an exported model).

``export_onnx`` writes ``model.onnx`` (normalised RGB crops ``images`` (B, 3, H, W) in, main heatmaps ``heatmaps``
(B, K, H/4, W/4) out, batch dynamic) and ``model.json`` beside it: what a runtime needs to use the network without
PyTorch or this package (crop size and padding, pixel normalisation, heatmap stride, keypoint names, skeleton, flip
pairs, decoding), plus the training config so that ``trspose predict model.onnx ...`` and ``trspose eval
model.onnx`` run the exported file through exactly the crops, flip test and decoding of a checkpoint.
"""

from __future__ import annotations

import contextlib
import copy
import io
from pathlib import Path

import torch
from torch import nn

from trspose.apps.predictor import SIDECAR_FORMAT, file_sha256, model_from_checkpoint
from trspose.config import ExperimentConfig, config_to_dict, pixel_normalization
from trspose.data.codec import HEATMAP_STRIDE, heatmap_size_for
from trspose.data.transforms import BOX_PADDING
from trspose.errors import ConfigError
from trspose.io import atomic_path, write_json
from trspose.models.pose_model import PoseModel

DEFAULT_OPSET = 18  # the lowest opset of torch's dynamo-based exporter


class HeatmapNetwork(nn.Module):
    """Images in, the main heatmaps out: what inference reads of a :class:`PoseModel`. The MFL level heads are
    dropped unless the model averages them into its output (``fuse_levels``), and the layout is the plain NCHW one
    (memory formats are a PyTorch matter)."""

    def __init__(self, model: PoseModel) -> None:
        super().__init__()
        model = copy.deepcopy(model).eval().to(memory_format=torch.contiguous_format)
        model.channels_last = False
        if not model.fuse_levels:
            model.level_heads = nn.ModuleDict()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, K, H/4, W/4)
        return self.model(images).heatmaps


def sidecar(cfg: ExperimentConfig, spec, *, checkpoint: str, opset: int, onnx_sha256: str) -> dict:
    """What a runtime needs besides the network: the crop, the pixels, the heatmaps and how to decode them, and
    the SHA-256 of the exported file, which names the one model.onnx this sidecar belongs to."""
    height, width = cfg.data.input_size
    mean, std = pixel_normalization(cfg.model)
    return {
        "format": SIDECAR_FORMAT,
        "input": {
            "name": "images",
            "shape": ["batch", 3, height, width],
            "layout": "NCHW",
            "channels": "RGB",
            "pixels": "float32 (pixel / 255 - mean) / std, per channel",
            "mean": list(mean),
            "std": list(std),
            "crop": f"person box (x, y, w, h) centred, widened or heightened to aspect width/height "
            f"{width}/{height}, padded x{BOX_PADDING}, warped affinely (bilinear) to {width}x{height}; "
            "outside the image is black",
            "box_padding": BOX_PADDING,
        },
        "output": {
            "name": "heatmaps",
            "shape": ["batch", spec.num_keypoints, *heatmap_size_for((height, width))],
            "stride": HEATMAP_STRIDE,
        },
        "keypoints": list(spec.names),
        "skeleton": [list(pair) for pair in spec.skeleton],
        "flip_pairs": [list(pair) for pair in spec.flip_pairs],
        "decoding": {
            "method": cfg.eval.decode,
            "sigma": cfg.data.sigma,
            "flip_test": cfg.eval.flip_test,
            "note": "keypoint k = the peak of heatmap k (argmax; 'dark' refines it to sub-pixel with the Taylor "
            "step on the log of the heatmap blurred with this sigma), x4 to crop pixels, then through the "
            "inverse crop affine to image pixels; score = the peak value. Flip test: the mirrored crop's "
            "heatmaps, mirrored back with flip_pairs swapped and shifted right by 1 - w/W heatmap pixels, "
            "averaged with the plain ones.",
        },
        "opset": opset,
        "onnx_sha256": onnx_sha256,
        "source_checkpoint": str(checkpoint),
        "config": config_to_dict(cfg),
    }


def export_onnx(
    checkpoint: str | Path, out_dir: str | Path | None = None, *, opset: int = DEFAULT_OPSET
) -> Path:
    """Write ``model.onnx`` and its sidecar ``model.json`` into ``out_dir`` (default: beside the checkpoint)."""
    from trspose.engine import build

    try:
        import onnx  # noqa: F401  (the exporter needs it; fail here in one line, not inside torch)
        import onnxscript  # noqa: F401
    except ImportError as error:
        raise ConfigError(
            f"ONNX export needs the packages onnx and onnxscript ({error}); pip install them"
        ) from None
    if opset < DEFAULT_OPSET:
        raise ConfigError(f"--opset {opset} is below {DEFAULT_OPSET}, the lowest torch's exporter writes")
    cfg, model = model_from_checkpoint(checkpoint)
    if not isinstance(model, PoseModel):
        raise ConfigError(f"{checkpoint} holds a {type(model).__name__}, not a trspose pose model")
    out = Path(out_dir) if out_dir else Path(checkpoint).parent
    out.mkdir(parents=True, exist_ok=True)
    path = write_onnx(HeatmapNetwork(model.cpu()).eval(), cfg.data.input_size, out / "model.onnx", opset)
    write_json(
        sidecar(
            cfg,
            build.keypoint_spec(cfg),
            checkpoint=str(checkpoint),
            opset=opset,
            onnx_sha256=file_sha256(path),
        ),  # fmt: skip
        path.with_suffix(".json"),
    )
    return path


def write_onnx(
    network: nn.Module, input_size: tuple[int, int], path: Path, opset: int = DEFAULT_OPSET
) -> Path:
    """Export ``network`` (images (B, 3, H, W) -> heatmaps) to ``path`` with a dynamic batch dimension, through
    ``trspose.io.atomic_path``: a failed export leaves no file behind (a full disk is a ``WriteError``)."""
    with atomic_path(path) as temporary:
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # the exporter narrates each of its passes
                torch.onnx.export(
                    network,
                    (torch.zeros(2, 3, *input_size),),
                    str(temporary),
                    input_names=["images"],
                    output_names=["heatmaps"],
                    dynamic_shapes={"images": {0: torch.export.Dim("batch")}},
                    opset_version=opset,
                    dynamo=True,
                    external_data=False,
                    verbose=False,
                )
        except OSError:
            raise
        except Exception as error:  # the exporter raises many types
            raise ConfigError(f"ONNX export to {path} failed: {str(error).splitlines()[0][:300]}") from error
    return path
