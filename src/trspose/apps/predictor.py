"""One place that turns a trained model into a ready network: a checkpoint, or an exported ONNX model with its
sidecar (checked to belong to it), both behind the :class:`~trspose.models.pose_model.PoseModel` interface
(``model(images)`` -> ``PoseOutput``), so prediction, flip test and decoding are the toolkit's own code either way."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from trspose.config import ExperimentConfig, config_from_dict
from trspose.engine import build
from trspose.engine.checkpoint import load_checkpoint
from trspose.errors import ConfigError
from trspose.models.pose_model import PoseOutput

log = logging.getLogger(__name__)
SIDECAR_FORMAT = "trspose-onnx/1"


def load_model(path: str | Path) -> tuple[ExperimentConfig, nn.Module]:
    """The config and the ready (eval-mode) inference network of a checkpoint (``.pt``) or of an exported model
    (``.onnx``, run by onnxruntime behind the same interface; its config comes from the sidecar beside it): what
    eval, predict, video, export and the diagnostics start from."""
    if Path(path).suffix.lower() == ".onnx":
        return model_from_onnx(path)
    return model_from_checkpoint(path)


def model_from_checkpoint(path: str | Path) -> tuple[ExperimentConfig, nn.Module]:
    """The config and inference network stored in a checkpoint written by ``trspose train``."""
    state = load_checkpoint(path)
    cfg = config_from_dict(state["config"])
    bare = build.bare_config(cfg)  # the checkpoint holds every weight
    method = build.build_method(bare, build.build_model(bare))
    method.load_state_dict(state["method"])
    return cfg, method.inference_model().eval()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
