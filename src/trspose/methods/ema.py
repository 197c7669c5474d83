"""Exponential moving averages of network parameters (teachers, slow reviewers)."""

from __future__ import annotations

import copy

import torch
from torch import nn


def frozen_copy(network: nn.Module) -> nn.Module:
    """A deep copy that never receives gradients and always predicts in eval mode (BatchNorm running stats)."""
    clone = copy.deepcopy(network)
    for parameter in clone.parameters():
        parameter.requires_grad_(False)
    return clone.eval()


@torch.no_grad()
def ema_update(target: nn.Module, source: nn.Module, momentum: float) -> None:
    """``target <- momentum * target + (1 - momentum) * source`` for parameters; buffers are averaged too
    (BatchNorm running statistics), integer buffers (``num_batches_tracked``) are copied.

    momentum 0 copies the source; momentum 1 leaves the target unchanged.
    """
    for weight, value in zip(target.parameters(), source.parameters()):
        weight.mul_(momentum).add_(value.detach(), alpha=1.0 - momentum)
    for buffer, new in zip(target.buffers(), source.buffers()):
        if buffer.dtype.is_floating_point:
            buffer.mul_(momentum).add_(new.detach(), alpha=1.0 - momentum)
        else:
            buffer.copy_(new)


@torch.no_grad()
def copy_weights(target: nn.Module, source: nn.Module) -> None:
    ema_update(target, source, momentum=0.0)
