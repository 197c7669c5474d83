"""A small network with a batch norm, for the EMA and reviewer tests."""

import torch
from torch import nn


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
