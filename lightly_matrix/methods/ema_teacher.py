"""BYOL's layout [0], shared by BYOL, MEC and Matrix-SSL: an online network (backbone, projector,
predictor) and an EMA teacher (backbone, projector) whose projections are the targets.

The methods differ only in their heads and in the loss of one (online prediction, teacher
projection) pair; the teacher, its momentum schedule and the two-view step are defined here once.

- [0] Grill et al., Bootstrap Your Own Latent, NeurIPS 2020, https://arxiv.org/abs/2006.07733
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

from lightly.models.utils import deactivate_requires_grad
from torch import Tensor, nn, no_grad

from lightly_matrix.methods.base import PretrainModule


class EMATeacherModule(PretrainModule):
    """Base of the online/EMA-teacher methods.

    Subclasses build ``self.projection_head`` and ``self.prediction_head``, then call
    :meth:`_init_teacher`, and implement :meth:`pair_loss`. Their hyper-parameters include
    ``momentum_start`` and ``momentum_end``: the teacher momentum follows a cosine schedule between
    them over all training steps, and the teacher moves after each optimizer step (BYOL's, as in
    the Matrix-SSL and MEC code; :meth:`PretrainModule.optimizer_step`).
    """

    #: The Matrix-SSL authors' ImageNet ResNet-50 recipe (``main_pretrain.py``): the teacher
    #: methods share it, so that BYOL, MEC and Matrix-SSL differ only in heads and loss.
    recipe: ClassVar[dict[str, Any]] = {
        "zero_init_residual": True,
        "lr": 0.5,
        "weight_decay": 1e-5,
        "warmup_style": "linspace",
        "decay_norm_and_bias": True,
    }
    projection_head: nn.Module
    prediction_head: nn.Module

    def _init_teacher(self) -> None:
        """The teacher: copies of the online backbone and projector that get no gradient."""
        self.teacher_backbone = copy.deepcopy(self.backbone)
        self.teacher_projection_head = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.teacher_backbone)
        deactivate_requires_grad(self.teacher_projection_head)

    def forward_student(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Returns backbone features, projection and prediction of the online network."""
        features = self.forward(x)
        projection = self.projection_head(features)
        return features, projection, self.prediction_head(projection)

    @no_grad()
    def forward_teacher(self, x: Tensor) -> Tensor:
        """Returns the teacher projection (no gradient)."""
        return self.teacher_projection_head(self.teacher_backbone(x).flatten(start_dim=1))

    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """The teacher follows backbone and projector; the base updates it after each step."""
        return [
            (self.backbone, self.teacher_backbone),
            (self.projection_head, self.teacher_projection_head),
        ]

    def pair_loss(self, online: Tensor, target: Tensor) -> Tensor:
        """Loss of one (online prediction, teacher projection) pair."""
        raise NotImplementedError

    def training_step(self, batch: tuple[list[Tensor], Tensor], batch_idx: int) -> Tensor:
        """One step on two views: ``0.5 * (loss(z1, p2) + loss(z2, p1))`` plus the online probe."""
        views, targets = batch[0], batch[1]
        features_1, projection_1, prediction_1 = self.forward_student(views[0])
        _, _, prediction_2 = self.forward_student(views[1])
        teacher_1 = self.forward_teacher(views[0])
        teacher_2 = self.forward_teacher(views[1])
        loss = 0.5 * (
            self.pair_loss(prediction_1, teacher_2) + self.pair_loss(prediction_2, teacher_1)
        )

        batch_size = len(targets)
        self.log_loss("train_loss", loss, batch_size, prog_bar=True)
        self.track_embeddings(backbone=features_1, projection=projection_1)
        return loss + self.online_probe(features_1, targets, batch_idx)
