"""The reviewer: a small store of important historical parameters that gives the student a second target.

Policies (``ReviewerConfig.policy``):
- ``best``: snapshot the teacher whenever its hold-out score is a new best (default; "important" = good);
- ``periodic``: snapshot the teacher every ``every`` steps;
- ``slow_ema``: one network, an EMA of the teacher with a much larger momentum;
- ``memory``: no network; per unlabelled person the most confident pseudo-keypoints ever made (methods/memory.py).
The store keeps the ``size`` most recent snapshots (for ``best``: the best ones); predictions are averaged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from trspose.methods.ema import ema_update, frozen_copy


@dataclass
class ReviewerConfig:
    policy: Literal["best", "periodic", "slow_ema", "memory", "none"] = "best"
    """'best', 'periodic', 'slow_ema' (past teachers), 'memory' (each unlabelled person's most confident
    pseudo-keypoints so far, used where the current teacher is less sure) or 'none' (no reviewer)."""
    size: int = 1
    """Snapshots kept in the store."""
    every: int = 500
    """Period of the 'periodic' policy, in steps."""
    momentum: float = 0.9998
    """EMA momentum of the 'slow_ema' policy (the teacher uses method.ema_momentum). Its time constant is
    1 / (1 - momentum) steps: 5,000 for 0.9998, for runs of several times that many steps after the burn-in; a
    shorter run needs a smaller one (benchmarks/ssl_synthetic.py's 2,000-step rows: 0.998)."""
    weight: float = 0.5
    """Weight of the reviewer consistency term (fusion 'separate'), as a fraction of method.consistency_weight."""
    weight_mode: Literal["added", "share"] = "added"
    """'added': the teacher term keeps the whole consistency weight and the reviewer's comes on top of it (the total
    grows by ``weight`` once the store holds a network); 'share': the reviewer takes its ``weight`` out of the
    teacher's (teacher 1 - weight, reviewer weight), so the total is mean teacher's and removing the reviewer
    changes where the targets come from, not how much they weigh."""
    fusion: Literal["separate", "agreement", "confidence", "average"] = "separate"
    """'separate' (two weighted loss terms), 'agreement' or 'confidence' (one fused target per keypoint), or
    'average' (one target from the mean of the teacher's and the reviewer's heatmaps: an ensemble over time)."""
    agreement_px: float = 2.0
    """Teacher and reviewer peaks closer than this (heatmap pixels) agree."""

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError("size must be >= 1")
        if self.weight < 0.0 or (self.weight_mode == "share" and self.weight > 1.0):
            raise ValueError("weight must be >= 0, and at most 1 with method.reviewer.weight_mode=share")
        if self.policy == "memory" and self.fusion != "separate":
            raise ValueError(
                "fusion must be 'separate' with policy=memory (it has no heatmaps of the weak view)"
            )


class ReviewerStore:
    """Holds up to ``size`` frozen networks and the bookkeeping of the policy."""

    def __init__(self, template: nn.Module, cfg: ReviewerConfig):
        self.cfg = cfg
        self.template = template
        self.networks: list[nn.Module] = []
        self.scores: list[float] = []
        self.steps: list[int] = []
        self.best_score = -math.inf

    @property
    def active(self) -> bool:
        return bool(self.networks)

    def snapshot(self, source: nn.Module, step: int, score: float) -> None:
        """Add a frozen copy of ``source``; drop the oldest (or, for 'best', the worst) beyond ``size``."""
        network = frozen_copy(source)
        self.networks.append(network)
        self.scores.append(score)
        self.steps.append(step)
        while len(self.networks) > self.cfg.size:
            drop = (
                min(range(len(self.scores)), key=self.scores.__getitem__) if self.cfg.policy == "best" else 0
            )
            for store in (self.networks, self.scores, self.steps):
                store.pop(drop)

    def before_step(self, step: int, teacher: nn.Module, teacher_ready: bool) -> bool:
        """'periodic': at the start of every ``every``-th step, snapshot the teacher as the steps before left it.
        Taken at the start of the step, not at the end of the one before, so that an evaluation in between (every
        ``eval_every`` steps, usually a multiple of ``every``) measures the reviewer the student has been learning
        from rather than a fresh copy of the teacher; the snapshot itself is the same network. Returns True when one
        was taken."""
        if self.cfg.policy != "periodic" or not teacher_ready or step == 0 or step % self.cfg.every:
            return False
        self.snapshot(teacher, step, float(step))
        return True

    def after_step(self, step: int, teacher: nn.Module, teacher_ready: bool) -> bool:
        """'slow_ema': after every optimiser step, move the reviewer towards the teacher. Returns True when it did."""
        if self.cfg.policy != "slow_ema" or not teacher_ready:
            return False
        if not self.networks:
            self.snapshot(teacher, step + 1, 0.0)
        else:
            ema_update(self.networks[0], teacher, self.cfg.momentum)
        return True

    def after_evaluation(self, step: int, score: float, teacher: nn.Module, teacher_ready: bool) -> bool:
        """The 'best' policy: snapshot when and only when the teacher's hold-out score is a new best."""
        if self.cfg.policy != "best" or not teacher_ready or score <= self.best_score:
            return False
        self.best_score = score
        self.snapshot(teacher, step, score)
        return True

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Mean heatmaps of the stored networks (eval mode). (B, 3, H, W) -> (B, K, h, w)."""
        return torch.stack([net(images).heatmaps.float() for net in self.networks]).mean(dim=0)

    def to(self, device: torch.device) -> None:
        for net in self.networks:
            net.to(device)

    def state_dict(self) -> dict:
        return {
            "networks": [net.state_dict() for net in self.networks],
            "scores": list(self.scores),
            "steps": list(self.steps),
            "best_score": self.best_score,
        }

    def load_state_dict(self, state: dict) -> None:
        self.networks = []
        for weights in state["networks"]:
            network = frozen_copy(self.template)
            network.load_state_dict(weights)
            self.networks.append(network)
        self.scores, self.steps, self.best_score = (
            list(state["scores"]),
            list(state["steps"]),
            state["best_score"],
        )
