"""Supervised training on the labelled instances only (also the all-labels upper bound)."""

from __future__ import annotations

from torch import nn

from trspose.data.datasets import PoseBatch
from trspose.data.unlabeled import UnlabeledBatch
from trspose.methods.base import Method, StepOutput
from trspose.methods.losses import multi_level_loss


class Supervised(Method):
    def __init__(self, student: nn.Module, level_weights: dict[str, float]):
        super().__init__({"student": student})
        self.level_weights = level_weights

    def training_step(self, labeled: PoseBatch, unlabeled: UnlabeledBatch | None, step: int) -> StepOutput:
        output = self.wrapped["student"](labeled.images)
        loss, parts = multi_level_loss(
            output.heatmaps, output.levels, labeled.heatmaps, labeled.target_weight, self.level_weights
        )
        metrics = {"loss/supervised": parts["main"].detach()}
        metrics.update({f"loss/level_{name}": v.detach() for name, v in parts.items() if name != "main"})
        return StepOutput(loss=loss, metrics=metrics)

    def inference_model(self) -> nn.Module:
        return self.trainable["student"]
