"""Teacher-Reviewer-Student (TRS) and, with the reviewer and Keypoint-Mix switched off, mean teacher. MFL belongs to
the model (``model.mfl_levels``), not to the method: the mean-teacher rows of the tables train without it.

Per step (docs/METHOD.md):
    L = L_sup(S(x_l), H_gt) + w_t(t) L_cons(S(strong(x_u)), A(T(weak(x_u)))) + w_r(t) L_cons(S(strong(x_u)), A(R(weak(x_u))))
where w_r(t) = reviewer.weight * w(t) and w_t(t) = w(t) (reviewer.weight_mode 'added') or (1 - reviewer.weight) w(t)
('share'), w(t) the ramped consistency weight.
The teacher T is an EMA of the student S after a supervised burn-in; the reviewer R is a store of good past
teachers (see reviewer.py). T and R predict in eval mode under no_grad and are never wrapped in DDP. The
student sees labelled crops and strong views in ONE forward pass, so its BatchNorm statistics see both and
DDP sees one forward per backward.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from trspose.data.codec import HeatmapCodec
from trspose.data.datasets import PoseBatch
from trspose.data.unlabeled import UnlabeledBatch
from trspose.methods.base import Method, StepOutput
from trspose.methods.ema import copy_weights, ema_update, frozen_copy
from trspose.methods.keypoint_mix import joint_cutout, keypoint_mix
from trspose.methods.losses import multi_level_loss
from trspose.methods.memory import PeopleViews, PseudoLabelMemory, memory_target
from trspose.methods.pseudo_labels import PseudoTarget, fuse_targets, make_pseudo_target, peaks_agree
from trspose.methods.reviewer import ReviewerConfig, ReviewerStore
from trspose.methods.teacher_student import TeacherStudentConfig, consistency_weight


def term_weights(ramp: float, cfg: ReviewerConfig, with_reviewer: bool) -> tuple[float, float]:
    """(teacher term, reviewer term) weights at consistency weight ``ramp``: the reviewer's comes on top of the
    teacher's (weight_mode 'added') or out of it ('share'); without a reviewer term the teacher's is ``ramp``."""
    if not with_reviewer:
        return ramp, 0.0
    reviewer = ramp * cfg.weight
    return (ramp - reviewer if cfg.weight_mode == "share" else ramp), reviewer


class TeacherReviewerStudent(Method):
    uses_unlabeled = True

    selection_candidate = "teacher"

    def __init__(
        self,
        student: nn.Module,
        level_weights: dict[str, float],
        cfg: TeacherStudentConfig,
        flip_index,
        codec: HeatmapCodec,
        *,
        seed: int = 0,
        rank: int = 0,
    ):
        super().__init__({"student": student})
        self.codec = codec
        self.cfg = cfg
        self.level_weights = level_weights
        self.flip_index = torch.as_tensor(flip_index, dtype=torch.long)
        self.teacher = frozen_copy(student)
        self.reviewer = ReviewerStore(student, cfg.reviewer)
        self.memory = PseudoLabelMemory(len(self.flip_index))  # the 'memory' policy's; empty otherwise
        self.seed, self.rank = seed, rank
        self.step = 0

    @classmethod
    def mean_teacher(cls, student: nn.Module, level_weights: dict[str, float], cfg: TeacherStudentConfig,
                     flip_index, codec: HeatmapCodec, *, seed: int = 0, rank: int = 0) -> TeacherReviewerStudent:  # fmt: skip
        """Mean teacher (the PoseCons family: one network and its EMA): TRS without reviewer and Keypoint-Mix. MFL
        level heads, where the model has them, are supervised as in TRS; the baseline trains a model without them."""
        cfg = dataclasses.replace(
            cfg, keypoint_mix=False, reviewer=dataclasses.replace(cfg.reviewer, policy="none")
        )
        return cls(student, level_weights, cfg, flip_index, codec, seed=seed, rank=rank)

    @property
    def unlabeled_from_step(self) -> int:
        return self.cfg.burn_in_steps

    @property
    def teacher_ready(self) -> bool:
        return self.step >= self.cfg.burn_in_steps

    def training_step(self, labeled: PoseBatch, unlabeled: UnlabeledBatch | None, step: int) -> StepOutput:
        self.step = step
        if self.cfg.reviewer.policy != "none":
            self.reviewer.before_step(step, self.teacher, self.teacher_ready)
        n_labeled = labeled.images.shape[0]
        generator = self._generator(step)
        labeled_images = labeled.images
        if self.cfg.keypoint_mix and self.cfg.keypoint_mix_labeled:
            labeled_images = self._mix(
                labeled_images, labeled.keypoints[..., :2], labeled.target_weight > 0, generator
            )
        if not self.teacher_ready or unlabeled is None:  # burn-in: supervised only
            output = self.wrapped["student"](labeled_images)
            loss, parts = multi_level_loss(
                output.heatmaps, output.levels, labeled.heatmaps, labeled.target_weight, self.level_weights
            )
            return StepOutput(loss, {"loss/supervised": parts["main"].detach()})

        teacher_target, reviewer_target, metrics = self._pseudo_targets(unlabeled)
        strong, _, _ = self.perturb_strong_view(unlabeled.strong, teacher_target, generator)
        output = self.wrapped["student"](torch.cat([labeled_images, strong]))  # (B_l + B_u, K, h, w)
        labeled_rows, strong_rows = slice(None, n_labeled), slice(n_labeled, None)
        levels_l = {k: v[labeled_rows] for k, v in output.levels.items()}
        levels_u = {k: v[strong_rows] for k, v in output.levels.items()}
        supervised, parts = multi_level_loss(
            output.heatmaps[labeled_rows],
            levels_l,
            labeled.heatmaps,
            labeled.target_weight,
            self.level_weights,
        )
        ramp = consistency_weight(step, self.cfg)
        teacher_weight, reviewer_weight = term_weights(ramp, self.cfg.reviewer, reviewer_target is not None)
        teacher_keypoints = teacher_target.weight
        if reviewer_target is not None and self.cfg.reviewer.policy == "memory":
            # the memory teaches some keypoints only: the teacher gives up its share on those alone
            share = self.cfg.reviewer.weight if self.cfg.reviewer.weight_mode == "share" else 0.0
            teacher_keypoints = teacher_target.weight * (1.0 - share * reviewer_target.weight)
            teacher_weight, reviewer_weight = ramp, ramp * self.cfg.reviewer.weight
        teacher_loss, _ = multi_level_loss(
            output.heatmaps[strong_rows],
            levels_u,
            teacher_target.heatmaps,
            teacher_keypoints,
            self.level_weights,
        )
        loss = supervised + teacher_weight * teacher_loss
        metrics.update(
            {
                "loss/supervised": parts["main"].detach(),
                "loss/teacher": teacher_loss.detach(),
                "weight/consistency": ramp,
            }
        )
        if reviewer_target is not None:
            reviewer_loss, _ = multi_level_loss(
                output.heatmaps[strong_rows],
                levels_u,
                reviewer_target.heatmaps,
                reviewer_target.weight,
                self.level_weights,
            )
            loss = loss + reviewer_weight * reviewer_loss
            metrics["loss/reviewer"] = reviewer_loss.detach()
        return StepOutput(loss, metrics)

    @torch.no_grad()
    def pseudo_targets(
        self,
        weak: torch.Tensor,
        weak_to_strong: torch.Tensor,
        flipped: torch.Tensor,
        people: PeopleViews | None = None,
        *,
        remember: bool = False,
    ) -> dict[str, PseudoTarget]:
        """Pseudo-labels of weak views (B, 3, H, W), in the strong views' heatmap frame: 'teacher', 'reviewer'
        (while the store holds a network; with the 'memory' policy, where ``people`` says who they are) and 'target',
        what the teacher term learns from (with a fusion other than 'separate' the fused target, else the teacher's).
        ``remember``: the 'memory' policy first keeps what the teacher predicts now (training steps do; measuring
        does not). None before the burn-in ends: no teacher yet."""
        if not self.teacher_ready:
            return {}
        flip_index = self.flip_index.to(weak.device)
        views = (weak_to_strong, flipped, flip_index)
        masks = (self.cfg.confidence_threshold, self.cfg.confidence_keep_fraction)
        teacher_heatmaps = self.teacher(weak).heatmaps.float()  # (B, K, h, w) weak view
        teacher = make_pseudo_target(teacher_heatmaps, *views, *masks)
        targets = {"teacher": teacher, "target": teacher}
        if self.cfg.reviewer.policy == "memory":
            if people is not None:
                targets["reviewer"] = memory_target(
                    self.memory, teacher_heatmaps, teacher, people, self.codec, flip_index,
                    threshold=self.cfg.confidence_threshold, remember=remember,
                )  # fmt: skip
        elif self.cfg.reviewer.policy != "none" and self.reviewer.active:
            reviewer_heatmaps = self.reviewer.predict(weak)
            targets["reviewer"] = reviewer = make_pseudo_target(reviewer_heatmaps, *views, *masks)
            fusion, agreement_px = self.cfg.reviewer.fusion, self.cfg.reviewer.agreement_px
            if fusion == "average":
                targets["target"] = make_pseudo_target(
                    0.5 * (teacher_heatmaps + reviewer_heatmaps), *views, *masks
                )
            elif fusion != "separate":
                targets["target"], _ = fuse_targets(teacher, reviewer, fusion, agreement_px)
        return targets

    def _pseudo_targets(self, unlabeled) -> tuple[PseudoTarget, PseudoTarget | None, dict]:
        """(the target the teacher term learns from, the reviewer's target when it is a term of its own, statistics)."""
        people = PeopleViews(unlabeled.ann_id, unlabeled.weak_crop_to_image, unlabeled.strong_crop_to_image)
        targets = self.pseudo_targets(
            unlabeled.weak, unlabeled.weak_to_strong, unlabeled.flipped, people, remember=True
        )
        teacher, target, reviewer = targets["teacher"], targets["target"], targets.get("reviewer")
        metrics = {
            "pseudo/kept_fraction": target.weight.mean(),
            "pseudo/mean_confidence": teacher.confidence.mean(),
        }
        if reviewer is None:
            return target, None, metrics
        agree = peaks_agree(teacher, reviewer, self.cfg.reviewer.agreement_px)
        metrics["pseudo/teacher_reviewer_agreement"] = agree.float().mean()
        return target, reviewer if self.cfg.reviewer.fusion == "separate" else None, metrics

    def perturb_strong_view(
        self, strong: torch.Tensor, target: PseudoTarget, generator: torch.Generator
    ) -> tuple[torch.Tensor, list, list]:
        """Keypoint-Mix, then joint cutout, on the student's strong views (B, 3, H, W) at the teacher's peaks where
        its mask keeps them. Returns the images and where patches were pasted and erased, as (image, x0, y0), for
        pictures (``trspose preview-training``)."""
        peaks, valid = (
            self.codec.heatmap_to_input(target.peaks),
            target.weight > 0,
        )  # (B, K, 2) input px, (B, K)
        pasted: list[tuple[int, int, int]] = []
        erased: list[tuple[int, int, int]] = []
        if self.cfg.keypoint_mix:
            strong, record = keypoint_mix(strong, peaks, valid, self.cfg.mix, generator, self.flip_index)
            pasted = record.destination
        if self.cfg.joint_cutout.probability > 0:
            strong, erased = joint_cutout(strong, peaks, valid, self.cfg.joint_cutout, generator)
        return strong, pasted, erased

    def _mix(
        self, images: torch.Tensor, points: torch.Tensor, valid: torch.Tensor, generator
    ) -> torch.Tensor:
        mixed, _ = keypoint_mix(images, points, valid, self.cfg.mix, generator, self.flip_index)
        return mixed

    def _generator(self, step: int) -> torch.Generator:
        """The draws of Keypoint-Mix and joint cutout: a pure function of (train seed, rank, step), so every rank
        mixes differently and a resumed run draws exactly what the uninterrupted one did."""
        return torch.Generator().manual_seed(self.seed * 1_000_003 + self.rank * 100_003 + step)

    def after_optimizer_step(self, step: int) -> None:
        self.step = step + 1
        student = self.trainable["student"]
        if self.step == self.cfg.burn_in_steps:
            copy_weights(
                self.teacher, student
            )  # FixMatch / unbiased-teacher: start the teacher from the student
        elif self.step > self.cfg.burn_in_steps:
            ema_update(self.teacher, student, self.cfg.ema_momentum)
        if self.cfg.reviewer.policy != "none":
            self.reviewer.after_step(step, self.teacher, self.teacher_ready)

    def after_evaluation(self, step: int, score: float) -> None:
        if self.cfg.reviewer.policy != "none":
            self.reviewer.after_evaluation(step, score, self.teacher, self.teacher_ready)

    def inference_model(self) -> nn.Module:
        return self.teacher if self.teacher_ready else self.trainable["student"]

    def candidates(self) -> dict[str, nn.Module]:
        return {"teacher": self.teacher, "student": self.trainable["student"]}

    def to(self, device) -> None:
        super().to(device)
        self.teacher.to(device)
        self.reviewer.to(device)

    def state_dict(self) -> dict:
        return {
            **super().state_dict(),
            "teacher": self.teacher.state_dict(),
            "reviewer": self.reviewer.state_dict(),
            "memory": self.memory.state_dict(),
            "step": self.step,
        }

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.teacher.load_state_dict(state["teacher"])
        self.reviewer.load_state_dict(state["reviewer"])
        if "memory" in state:  # checkpoints from before the 'memory' policy have none
            self.memory.load_state_dict(state["memory"])
        self.step = state["step"]
