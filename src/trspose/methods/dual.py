"""Dual networks teaching each other (the "PoseDual" baseline, Xie et al., ICCV 2021).

Two students, both optimised. Each predicts on the weak view (eval mode, no_grad: unlike the PoseDual code,
whose train-mode teacher pass lets zero-padded views leak into BatchNorm statistics) and the other learns on
the strong view from that pseudo-target. Costs about twice a mean teacher per step.
"""

from __future__ import annotations

import torch
from torch import nn

from trspose.data.datasets import PoseBatch
from trspose.data.unlabeled import UnlabeledBatch
from trspose.methods.base import Method, StepOutput
from trspose.methods.losses import multi_level_loss
from trspose.methods.pseudo_labels import PseudoTarget, make_pseudo_target
from trspose.methods.teacher_student import TeacherStudentConfig, consistency_weight


class DualNetworks(Method):
    uses_unlabeled = True
    selection_candidate = "student"

    def __init__(
        self,
        first: nn.Module,
        second: nn.Module,
        level_weights: dict[str, float],
        cfg: TeacherStudentConfig,
        flip_index,
    ):
        super().__init__({"student": first, "partner": second})
        self.cfg = cfg
        self.level_weights = level_weights
        self.flip_index = torch.as_tensor(flip_index, dtype=torch.long)

    @torch.no_grad()
    def _target(self, name: str, weak: torch.Tensor, weak_to_strong: torch.Tensor, flipped: torch.Tensor):
        """The pseudo-target network ``name`` makes for the other one."""
        network = self.trainable[name]
        was_training = network.training
        network.eval()
        heatmaps = network(weak).heatmaps.float()
        network.train(was_training)
        flip_index = self.flip_index.to(heatmaps.device)
        masks = (self.cfg.confidence_threshold, self.cfg.confidence_keep_fraction)
        return make_pseudo_target(heatmaps, weak_to_strong, flipped, flip_index, *masks)

    @property
    def unlabeled_from_step(self) -> int:
        return self.cfg.burn_in_steps

    def pseudo_targets(self, weak, weak_to_strong, flipped, people=None) -> dict[str, PseudoTarget]:
        """The student's pseudo-labels (made by its partner, the teacher of this method) of weak views."""
        target = self._target("partner", weak, weak_to_strong, flipped)
        return {"teacher": target, "target": target}

    def training_step(self, labeled: PoseBatch, unlabeled: UnlabeledBatch | None, step: int) -> StepOutput:
        n = labeled.images.shape[0]
        views = unlabeled if step >= self.cfg.burn_in_steps else None  # None: burn-in, supervised only
        targets, images = {}, labeled.images
        if views is not None:
            targets = {
                name: self._target(other, views.weak, views.weak_to_strong, views.flipped)
                for name, other in (("student", "partner"), ("partner", "student"))
            }  # fmt: skip
            images = torch.cat([labeled.images, views.strong])
        ramp = consistency_weight(step, self.cfg)
        total = torch.zeros((), device=labeled.images.device)
        metrics: dict[str, torch.Tensor | float] = {}
        for name in ("student", "partner"):
            output = self.wrapped[name](images)
            levels_l = {k: v[:n] for k, v in output.levels.items()}
            supervised, parts = multi_level_loss(
                output.heatmaps[:n], levels_l, labeled.heatmaps, labeled.target_weight, self.level_weights
            )
            total = total + supervised
            metrics[f"loss/supervised_{name}"] = parts["main"].detach()
            if views is not None:
                target = targets[name]
                levels_u = {k: v[n:] for k, v in output.levels.items()}
                consistency, _ = multi_level_loss(
                    output.heatmaps[n:], levels_u, target.heatmaps, target.weight, self.level_weights
                )
                total = total + ramp * consistency
                metrics[f"loss/consistency_{name}"] = consistency.detach()
                metrics[f"pseudo/kept_fraction_{name}"] = target.weight.mean()
        if views is not None:  # both networks' targets, as one number beside the other methods' kept fraction
            metrics["pseudo/kept_fraction"] = 0.5 * (
                targets["student"].weight.mean() + targets["partner"].weight.mean()
            )
        return StepOutput(total, metrics)

    def inference_model(self) -> nn.Module:
        return self.trainable["student"]

    def candidates(self) -> dict[str, nn.Module]:
        return {"student": self.trainable["student"], "partner": self.trainable["partner"]}
