"""Models: backbones (name -> constructor), heatmap heads, and the pose model that joins them."""

from trspose.models.backbones import BACKBONES, Backbone, build_backbone, load_backbone_weights
from trspose.models.heads import ConvHead, DeconvHead, FPNHead, LevelHead
from trspose.models.pose_model import MODEL_NAMES, PoseModel, PoseOutput, build_pose_model

__all__ = [
    "BACKBONES",
    "MODEL_NAMES",
    "Backbone",
    "ConvHead",
    "DeconvHead",
    "FPNHead",
    "LevelHead",
    "PoseModel",
    "PoseOutput",
    "build_backbone",
    "build_pose_model",
    "load_backbone_weights",
]
