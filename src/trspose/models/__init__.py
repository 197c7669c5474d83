"""Models: the backbone catalog (one entry per backbone), backbones, heatmap heads, and the pose model that joins
them."""

from trspose.models.backbones import Backbone, build_backbone, load_backbone_weights
from trspose.models.catalog import BACKBONES, MODEL_NAMES, BackboneEntry
from trspose.models.heads import ConvHead, DeconvHead, FPNHead, LevelHead
from trspose.models.pose_model import PoseModel, PoseOutput, build_pose_model

__all__ = [
    "BACKBONES",
    "MODEL_NAMES",
    "Backbone",
    "BackboneEntry",
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
