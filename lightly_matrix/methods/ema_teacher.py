"""BYOL's layout [0], shared by BYOL, MEC and Matrix-SSL: an online network (backbone, projector,
predictor) and an EMA teacher (backbone, projector) whose projections are the targets.

- [0] Grill et al., Bootstrap Your Own Latent, NeurIPS 2020, https://arxiv.org/abs/2006.07733
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

from lightly.models.utils import deactivate_requires_grad, update_momentum
from torch import Tensor, nn, no_grad

from lightly_matrix.methods.base import PretrainModule, SharedArgs, cosine
from lightly_matrix.models.modules import MatrixSSLPredictionHead, MatrixSSLProjectionHead


class TeacherArgs(SharedArgs, total=False):
    """The :class:`SharedArgs` and what every teacher method takes.

    Attributes:
        hidden_dim: Projector hidden width.
        output_dim: Projector (and predictor) output width.
        pred_hidden_dim: Predictor hidden width.
        momentum_start: Teacher EMA momentum at the first step.
        momentum_end: Teacher EMA momentum at the last step.
    """

    hidden_dim: int
    output_dim: int
    pred_hidden_dim: int
    momentum_start: float
    momentum_end: float


class EMATeacherModule(PretrainModule):
    """Base of the online/EMA-teacher methods.

    Subclasses take :class:`TeacherArgs` as ``**shared``, call ``_init_teacher()`` with their
    heads and set ``criterion``, the loss of one (online prediction, teacher projection) pair.
    """

    default_transform = "mocov3"
    #: The Matrix-SSL authors' ImageNet ResNet-50 run, so the teacher methods differ only in loss.
    shared_defaults: ClassVar[dict[str, Any]] = {
        "zero_init_residual": True,
        "lr": 0.5,
        "weight_decay": 1e-5,
        "warmup_style": "linspace",
        "decay_norm_and_bias": True,
        "hidden_dim": 2048,
        "output_dim": 2048,
        "pred_hidden_dim": 512,
        "momentum_start": 0.996,
        "momentum_end": 1.0,
    }
    prediction_head: nn.Module

    def _init_teacher(
        self, projection_head: nn.Module | None = None, prediction_head: nn.Module | None = None
    ) -> None:
        """Sets the online heads (default: Matrix-SSL's) and the gradient-free teacher copies."""
        hp, dim = self.hparams, self.feature_dim
        if projection_head is None or prediction_head is None:
            projection_head = MatrixSSLProjectionHead(dim, hp["hidden_dim"], hp["output_dim"])
            prediction_head = MatrixSSLPredictionHead(
                hp["output_dim"], hp["pred_hidden_dim"], hp["output_dim"]
            )
        self.projection_head = projection_head
        self.prediction_head = prediction_head
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

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """This step's teacher momentum: a cosine over the global step (a resume continues it)."""
        total = int(self.trainer.estimated_stepping_batches)
        hp = self.hparams
        self._momentum = cosine(
            self.trainer.global_step, total, hp["momentum_start"], hp["momentum_end"]
        )
        self.log("momentum", self._momentum, batch_size=1)

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """The optimizer step, then the teacher's EMA update (before any checkpoint is written)."""
        super().optimizer_step(*args, **kwargs)
        update_momentum(self.backbone, self.teacher_backbone, m=self._momentum)
        update_momentum(self.projection_head, self.teacher_projection_head, m=self._momentum)

    def pair_loss(self, online: Tensor, target: Tensor) -> Tensor:
        """Loss of one (online prediction, teacher projection) pair."""
        assert self.criterion is not None
        return self.criterion(online, target)

    def training_step(self, batch: tuple[list[Tensor], Tensor], batch_idx: int) -> Tensor:
        """One step on two views: ``0.5 * (loss(z1, p2) + loss(z2, p1))`` plus the online probe."""
        views, targets = batch[0], batch[1]
        features_1, projection_1, prediction_1 = self.forward_student(views[0])
        _, _, prediction_2 = self.forward_student(views[1])
        teacher_1, teacher_2 = self.forward_teacher(views[0]), self.forward_teacher(views[1])
        loss = 0.5 * (
            self.pair_loss(prediction_1, teacher_2) + self.pair_loss(prediction_2, teacher_1)
        )
        return self.finish_step(loss, targets, batch_idx, features_1, projection_1)
