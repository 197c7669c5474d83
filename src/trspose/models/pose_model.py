"""The pose model: backbone + heatmap head (+ light MFL level heads). Images in, heatmaps out.

Losses, decoding and pseudo-labels live outside ``forward``. ``build_pose_model`` is the one
place that translates names (backbone, levels) into modules.
"""

from dataclasses import dataclass, field

import torch
from torch import nn

from trspose.data.codec import HEATMAP_STRIDE, INPUT_MULTIPLE, valid_input_size
from trspose.errors import ConfigError
from trspose.models.backbones import STAGE_NAMES, Backbone, build_backbone
from trspose.models.catalog import backbone_entry
from trspose.models.heads import ConvHead, DeconvHead, FPNHead, LevelHead

HEADS = ("auto", "deconv", "conv", "fpn")  # 'auto': the head of the backbone's catalog entry
# FPN inputs, finest first: strides 8/16/32, and for HRNet all four branches (they are computed jointly,
# so an unused stride-4 branch would leave parameters without gradients)
FPN_STAGES = {"deconv": ("stage2", "stage3", "stage4"), "conv": STAGE_NAMES}


@dataclass
class PoseOutput:
    """What a pose model returns."""

    heatmaps: torch.Tensor  # (B, K, H/4, W/4) the main output; inference always uses this
    # stage name -> (B, K, H/4, W/4) auxiliary heatmaps of the MFL level heads; empty without MFL
    levels: dict[str, torch.Tensor] = field(default_factory=dict)


class PoseModel(nn.Module):
    """Backbone features -> main head heatmaps, plus one auxiliary heatmap set per MFL level.

    With ``fuse_levels`` the returned ``heatmaps`` are the mean of the main and level heatmaps.
    Level heatmaps are always returned (in train and eval mode) so a method can supervise them or
    read them from a teacher.
    """

    def __init__(
        self,
        backbone: Backbone,
        head: nn.Module,
        level_heads: nn.ModuleDict | None = None,
        fuse_levels: bool = False,
        *,
        head_feature: str | tuple[str, ...] = "stage4",
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.channels_last = channels_last  # inputs (and the weights, see build_pose_model) in NHWC layout
        self.backbone = backbone
        self.head = head
        self.level_heads = level_heads if level_heads is not None else nn.ModuleDict()
        self.fuse_levels = fuse_levels
        self.head_feature = head_feature  # the backbone stage (or stages, finest first) the main head reads

    def forward(self, images: torch.Tensor) -> PoseOutput:  # (B, 3, H, W)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        features = self.backbone(images)  # stage -> (B, C_i, H / s_i, W / s_i)
        if isinstance(self.head_feature, str):
            heatmaps = self.head(features[self.head_feature])  # (B, K, H/4, W/4)
        else:
            heatmaps = self.head([features[name] for name in self.head_feature])  # (B, K, H/4, W/4)
        output_size = tuple(heatmaps.shape[-2:])
        levels = {name: head(features[name], output_size) for name, head in self.level_heads.items()}
        if self.fuse_levels and levels:
            heatmaps = torch.stack([heatmaps, *levels.values()]).mean(dim=0)  # (B, K, H/4, W/4)
        return PoseOutput(heatmaps=heatmaps, levels=levels)


def _head_stage(kind: str, num_deconv_layers: int) -> str:
    """The backbone stage the main head reads, such that its output stride is 4."""
    if kind == "conv":
        return "stage1"  # HRNet's stride-4 high-resolution branch
    stage = f"stage{num_deconv_layers + 1}"  # each deconvolution halves the stride
    if stage not in STAGE_NAMES:
        raise ConfigError(
            f"num_deconv_layers={num_deconv_layers} must be 0 to 3 (from stride 4 to 32 to stride 4)"
        )
    return stage


def _build_head(
    kind: str, in_channels: int, num_keypoints: int, head_channels: int, num_deconv_layers: int
) -> nn.Module:
    if kind == "conv":
        return ConvHead(in_channels, num_keypoints)
    return DeconvHead(
        in_channels, num_keypoints, num_deconv_layers=num_deconv_layers, deconv_channels=head_channels
    )


def build_pose_model(
    *,
    backbone: str,
    num_keypoints: int,
    input_size: tuple[int, int],
    mfl_levels: tuple[str, ...] = (),
    fuse_levels: bool = False,
    pretrained: str = "",
    head_channels: int = 256,
    num_deconv_layers: int = 3,
    head: str = "auto",
    channels_last: bool = False,
) -> PoseModel:
    """Build a top-down heatmap model whose output is exactly ``codec.heatmap_size_for(input_size)`` (input / 4).

    ``pretrained``: "" (random backbone weights), "imagenet" or a local state dict file (see ``build_backbone``).
    ``channels_last``: weights and inputs in NHWC memory layout (faster convolutions; the same results).
    """
    default_head = backbone_entry(backbone).head
    if not valid_input_size(input_size):
        raise ConfigError(
            f"input_size {tuple(input_size)} must be positive multiples of {INPUT_MULTIPLE} "
            "(height, width), e.g. (256, 192) or (128, 96)"
        )
    if fuse_levels and not mfl_levels:
        raise ConfigError("fuse_levels needs at least one MFL level; set mfl_levels or turn fuse_levels off")
    unknown = [name for name in mfl_levels if name not in STAGE_NAMES]
    if unknown:
        raise ConfigError(f"unknown MFL level(s) {unknown}; valid levels: {', '.join(STAGE_NAMES)}")
    if head not in HEADS:
        raise ConfigError(f"unknown head {head!r}; valid heads: {', '.join(HEADS)}")
    kind = default_head if head == "auto" else head
    head_feature: str | tuple[str, ...]
    if kind == "fpn":
        head_feature = FPN_STAGES[default_head]
    else:
        head_feature = _head_stage(kind, num_deconv_layers)
    needed = (head_feature,) if isinstance(head_feature, str) else head_feature
    stages = tuple(name for name in STAGE_NAMES if name in needed or name in mfl_levels)
    body = build_backbone(backbone, pretrained, stages=stages)
    if isinstance(head_feature, tuple):  # FPN
        channels = [body.channels[name] for name in head_feature]
        upsample = body.strides[head_feature[0]] // HEATMAP_STRIDE
        main_head: nn.Module = FPNHead(channels, num_keypoints, channels=head_channels, upsample=upsample)
    else:
        main_head = _build_head(
            kind, body.channels[head_feature], num_keypoints, head_channels, num_deconv_layers
        )
    level_heads = nn.ModuleDict(
        {
            name: LevelHead(body.channels[name], num_keypoints, stride=body.strides[name])
            for name in mfl_levels
        }
    )
    model = PoseModel(
        body,
        main_head,
        level_heads,
        fuse_levels=fuse_levels,
        head_feature=head_feature,
        channels_last=channels_last,
    )
    return model.to(memory_format=torch.channels_last) if channels_last else model
