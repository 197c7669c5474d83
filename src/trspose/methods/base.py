"""What the trainer expects of a method object.

The trainer owns the loop, the optimiser and DDP; a method owns its networks and how a loss is made from a
labelled batch (and, for semi-supervised methods, an unlabelled batch). Only ``trainable`` networks are
optimised and wrapped in DistributedDataParallel; teachers and reviewers never are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from trspose.data.datasets import PoseBatch
from trspose.data.unlabeled import UnlabeledBatch
from trspose.methods.memory import PeopleViews
from trspose.methods.pseudo_labels import PseudoTarget


@dataclass
class StepOutput:
    loss: torch.Tensor
    """The scalar to back-propagate."""
    metrics: Mapping[str, torch.Tensor | float] = field(default_factory=dict)
    """Scalars to log, named like ``loss/supervised`` or ``pseudo/kept_fraction``. Detached tensors are fine:
    the trainer converts them only on logging steps, so the training step never waits for the device."""


class Method:
    """Base class: keeps the trainable networks and the (possibly DDP-wrapped) callables that run them."""

    uses_unlabeled: bool = False
    """Whether training_step needs an unlabelled batch."""

    @property
    def unlabeled_from_step(self) -> int:
        """The first step whose training_step reads its unlabelled batch (the end of a supervised burn-in): the
        trainer loads none before it and passes None."""
        return 0

    selection_candidate: str = "model"
    """The network of ``candidates()`` whose hold-out score selects 'best.pt' and drives the reviewer."""

    def __init__(self, trainable: dict[str, nn.Module]):
        self.trainable = nn.ModuleDict(trainable)
        self.wrapped: dict[str, Callable] = dict(trainable)
        """What training_step calls to run each trainable network: the network itself or its DDP wrapper."""

    def wrap(self, wrapper: Callable[[nn.Module], nn.Module]) -> None:
        """Let the trainer wrap each trainable network (DDP); the unwrapped modules stay in ``trainable``."""
        self.wrapped = {name: wrapper(module) for name, module in self.trainable.items()}

    def parameters(self) -> list[nn.Parameter]:
        return [p for p in self.trainable.parameters() if p.requires_grad]

    def train(self) -> None:
        self.trainable.train()

    def to(self, device: torch.device) -> None:
        """Move every network (trainable or not) to ``device``."""
        self.trainable.to(device)

    def training_step(self, labeled: PoseBatch, unlabeled: UnlabeledBatch | None, step: int) -> StepOutput:
        raise NotImplementedError

    def after_optimizer_step(self, step: int) -> None:
        """Called after every optimiser step (EMA updates, reviewer snapshots)."""

    def after_evaluation(self, step: int, score: float) -> None:
        """Called with the hold-out score whenever the trainer evaluates (reviewer policies use it)."""

    def perturb_strong_view(
        self, strong: torch.Tensor, target, generator: torch.Generator
    ) -> tuple[torch.Tensor, list, list]:
        """What the method does to the student's strong views (B, 3, H, W) beyond their augmentation, at the
        pseudo-target ``target`` (a ``PseudoTarget``): (images, pasted patches, erased patches), patches as
        (image, x0, y0). Nothing here; TRS pastes Keypoint-Mix patches and cuts out joints."""
        return strong, [], []

    def pseudo_targets(
        self,
        weak: torch.Tensor,
        weak_to_strong: torch.Tensor,
        flipped: torch.Tensor,
        people: PeopleViews | None = None,
    ) -> dict[str, PseudoTarget]:
        """The pseudo-labels (``PseudoTarget`` by source: 'teacher', 'reviewer', 'target' = what the student learns
        from) this method makes of weak views, for measuring them against hidden ground truth; none here."""
        return {}

    def inference_model(self) -> nn.Module:
        """The network that evaluation and prediction use."""
        raise NotImplementedError

    def candidates(self) -> dict[str, nn.Module]:
        """Networks worth scoring on the hold-out slice, by name (one of them is ``selection_candidate``)."""
        return {"model": self.inference_model()}

    def state_dict(self) -> dict:
        return {"trainable": self.trainable.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.trainable.load_state_dict(state["trainable"])
