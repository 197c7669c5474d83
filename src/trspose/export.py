"""Export a trained model to ONNX, and run an exported model through onnxruntime with the toolkit's own pipeline.

``export_onnx`` writes ``model.onnx`` (normalised RGB crops ``images`` (B, 3, H, W) in, main heatmaps ``heatmaps``
(B, K, H/4, W/4) out, batch dynamic) and ``model.json`` beside it: what a runtime needs to use the network without
PyTorch or this package (crop size and padding, pixel normalisation, heatmap stride, keypoint names, skeleton, flip
pairs, decoding), plus the training config so that ``trspose predict model.onnx ...`` and ``trspose eval
model.onnx`` run the exported file through exactly the crops, flip test and decoding of a checkpoint.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from trspose.config import ExperimentConfig, config_from_dict, config_to_dict, pixel_normalization
from trspose.data.codec import HEATMAP_STRIDE, heatmap_size_for
from trspose.data.transforms import BOX_PADDING
from trspose.errors import ConfigError
from trspose.io import write_json
from trspose.models.pose_model import PoseModel, PoseOutput

log = logging.getLogger(__name__)

SIDECAR_FORMAT = "trspose-onnx/1"
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


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    from trspose.engine.jobs import model_from_checkpoint

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
    path = write_onnx(
        HeatmapNetwork(model.cpu()).eval(), tuple(cfg.data.input_size), out / "model.onnx", opset
    )
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
    """Export ``network`` (images (B, 3, H, W) -> heatmaps) to ``path`` with a dynamic batch dimension; a failed
    export leaves no file behind."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the exporter narrates each of its passes
            torch.onnx.export(
                network,
                (torch.zeros(2, 3, *input_size),),
                str(partial),
                input_names=["images"],
                output_names=["heatmaps"],
                dynamic_shapes={"images": {0: torch.export.Dim("batch")}},
                opset_version=opset,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
    except Exception as error:  # the exporter raises many types; nothing half-written stays behind
        partial.unlink(missing_ok=True)
        raise ConfigError(f"ONNX export to {path} failed: {str(error).splitlines()[0][:300]}") from error
    partial.replace(path)  # a half-written file never has the final name
    return path


class OnnxPoseModel(nn.Module):
    """An exported network run by onnxruntime behind the interface of a :class:`PoseModel` (``model(images)`` ->
    ``PoseOutput``), so prediction, flip test and decoding are the toolkit's own code."""

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        super().__init__()
        try:
            import onnxruntime
        except ImportError:
            raise ConfigError("running an .onnx model needs onnxruntime; pip install onnxruntime") from None
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own exception types for unreadable files
            raise ConfigError(f"cannot load {path} with onnxruntime: {str(error).splitlines()[0]}") from None
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, images: torch.Tensor) -> PoseOutput:
        array = np.ascontiguousarray(images.detach().cpu().float().numpy())
        (heatmaps,) = self.session.run(None, {self.input_name: array})
        return PoseOutput(heatmaps=torch.from_numpy(heatmaps).to(images.device))


def model_from_onnx(path: str | Path) -> tuple[ExperimentConfig, OnnxPoseModel]:
    """The config (from the sidecar beside ``path``) and the onnxruntime-backed network of an exported model."""
    path = Path(path)
    meta_path = path.with_suffix(".json")
    if not path.is_file():
        raise ConfigError(f"ONNX model {path} does not exist; write one with 'trspose export CHECKPOINT'")
    if not meta_path.is_file():
        raise ConfigError(
            f"{path} has no sidecar {meta_path.name} beside it; export again with 'trspose export'"
        )
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"cannot read the sidecar {meta_path}: {error}") from None
    if not isinstance(meta, dict) or meta.get("format") != SIDECAR_FORMAT or "config" not in meta:
        raise ConfigError(
            f"{meta_path} is not a trspose ONNX sidecar (format {SIDECAR_FORMAT}); export again"
        )
    if "onnx_sha256" not in meta:
        log.warning("%s names no onnx_sha256 (an export older than that check): it is not checked against %s",
                    meta_path, path.name)  # fmt: skip
    elif meta["onnx_sha256"] != file_sha256(path):
        raise ConfigError(
            f"{meta_path} belongs to another model: its onnx_sha256 is not that of {path}; keep each model.onnx "
            "with the model.json exported beside it, or export again with 'trspose export CHECKPOINT'"
        )
    return config_from_dict(meta["config"]), OnnxPoseModel(path)
