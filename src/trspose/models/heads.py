"""Heatmap heads: map one backbone feature map to K keypoint heatmaps at stride 4.

- ``DeconvHead``: SimpleBaseline (Xiao et al., ECCV 2018), transposed convolutions from stride 32.
- ``ConvHead``: HRNet (Sun et al., CVPR 2019), a 1x1 convolution on the stride-4 branch.
- ``FPNHead``: top-down pathway with lateral connections (Lin et al., CVPR 2017) from strides 32/16/8 to
  stride 4. Skip connections give the head spatial detail that a stride-32 map of a small crop lacks
  (3x2 cells at 96x64), which makes models trained from scratch localise much sooner.
- ``LevelHead``: a light head for Multi-level Feature Learning (MFL), one per extra backbone stage.
"""

import torch
import torch.nn.functional as F
from torch import nn

from trspose.data.codec import HEATMAP_STRIDE


def init_final_conv(conv: nn.Conv2d) -> None:
    """Small normal init of the layer that emits heatmaps (SimpleBaseline: std 0.001, bias 0)."""
    nn.init.normal_(conv.weight, std=0.001)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def _conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class DeconvHead(nn.Module):
    """SimpleBaseline head: ``num_deconv_layers`` x (4x4 deconv stride 2, BN, ReLU), then a 1x1 conv.

    Each deconvolution doubles the resolution: three of them take stride 32 to stride 4.
    """

    def __init__(
        self, in_channels: int, num_keypoints: int, num_deconv_layers: int = 3, deconv_channels: int = 256
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for _ in range(num_deconv_layers):
            deconv = nn.ConvTranspose2d(
                channels, deconv_channels, kernel_size=4, stride=2, padding=1, output_padding=0, bias=False
            )
            nn.init.normal_(deconv.weight, std=0.001)  # SimpleBaseline's deconv init
            layers += [deconv, nn.BatchNorm2d(deconv_channels), nn.ReLU(inplace=True)]
            channels = deconv_channels
        self.deconv_layers = nn.Sequential(*layers)
        self.final_layer = nn.Conv2d(channels, num_keypoints, kernel_size=1)
        init_final_conv(self.final_layer)
        self.upsampling = 2**num_deconv_layers  # input stride / output stride

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # (B, C, h, w)
        x = self.deconv_layers(features)  # (B, D, h * 2^n, w * 2^n)
        return self.final_layer(x)  # (B, K, h * 2^n, w * 2^n)


class FPNHead(nn.Module):
    """Feature-pyramid head: 1x1 laterals on each input stage, nearest upsampling and addition from the
    deepest stage down, one 3x3 conv + BN + ReLU at the finest stage, 2x bilinear upsampling when that stage
    is at stride 8, and a 1x1 conv to heatmaps. Its input is the list of stages, finest first."""

    def __init__(self, in_channels: list[int], num_keypoints: int, channels: int = 128, upsample: int = 2):
        super().__init__()
        self.laterals = nn.ModuleList(nn.Conv2d(c, channels, kernel_size=1) for c in in_channels)
        self.smooth = _conv_bn_relu(channels, channels)
        self.final_layer = nn.Conv2d(channels, num_keypoints, kernel_size=1)
        init_final_conv(self.final_layer)
        self.upsample = upsample  # finest input stride / output stride

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:  # finest first: (B, C_i, h_i, w_i)
        x = self.laterals[-1](features[-1])
        for lateral, feature in zip(reversed(self.laterals[:-1]), reversed(features[:-1])):
            x = lateral(feature) + F.interpolate(x, size=feature.shape[-2:], mode="nearest")
        x = self.smooth(x)  # (B, channels, h_0, w_0)
        if self.upsample > 1:
            x = F.interpolate(x, scale_factor=self.upsample, mode="bilinear", align_corners=False)
        return self.final_layer(x)  # (B, K, H/4, W/4)


class ConvHead(nn.Module):
    """HRNet head: an optional 3x3 conv + BN + ReLU, then a 1x1 conv, at the input resolution."""

    def __init__(self, in_channels: int, num_keypoints: int, hidden_channels: int | None = None) -> None:
        super().__init__()
        channels = in_channels
        self.hidden: nn.Module = nn.Identity()
        if hidden_channels is not None:
            self.hidden = _conv_bn_relu(in_channels, hidden_channels)
            channels = hidden_channels
        self.final_layer = nn.Conv2d(channels, num_keypoints, kernel_size=1)
        init_final_conv(self.final_layer)
        self.upsampling = 1

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # (B, C, H/4, W/4)
        return self.final_layer(self.hidden(features))  # (B, K, H/4, W/4)


class LevelHead(nn.Module):
    """Light MFL head: 3x3 conv + BN + ReLU + 1x1 conv at the stage's resolution, then bilinear
    upsampling to the output resolution (computing at low resolution keeps it cheap)."""

    def __init__(self, in_channels: int, num_keypoints: int, stride: int, hidden: int = 64) -> None:
        super().__init__()
        self.hidden = _conv_bn_relu(in_channels, hidden)
        self.final_layer = nn.Conv2d(hidden, num_keypoints, kernel_size=1)
        init_final_conv(self.final_layer)
        self.scale = stride // HEATMAP_STRIDE

    def forward(self, features: torch.Tensor, output_size: tuple[int, int] | None = None) -> torch.Tensor:
        x = self.final_layer(self.hidden(features))  # (B, K, h, w) at the stage's stride
        if output_size is None:
            output_size = (x.shape[-2] * self.scale, x.shape[-1] * self.scale)
        if tuple(x.shape[-2:]) == tuple(output_size):
            return x
        return F.interpolate(x, size=output_size, mode="bilinear", align_corners=False)  # (B, K, H/4, W/4)
