"""Matrix-SSL (Zhang et al., ICML 2024): BYOL-style online/EMA-teacher networks trained with matrix
cross-entropy (uniformity + gamma * alignment) between predictor outputs and teacher projections."""

from __future__ import annotations

import copy

from lightly.models.utils import deactivate_requires_grad, update_momentum
from lightly.utils.scheduler import cosine_schedule
from torch import Tensor, no_grad

from lightly_matrix.loss import MatrixSSLLoss
from lightly_matrix.methods.base import PretrainModule
from lightly_matrix.models.modules import MatrixSSLPredictionHead, MatrixSSLProjectionHead


class MatrixSSL(PretrainModule):
    """Matrix-SSL pretraining module.

    Defaults are the paper's ImageNet ResNet-50 run: projector 2048-2048-2048 (last BN without
    affine),
    predictor 2048-512-2048, SGD with lr 0.5 per 256 images, weight decay 1e-5, 10 warm-up epochs,
    teacher momentum 0.996 -> 1 on a cosine schedule, lamda = mu = gamma = 1, Taylor order 4.

    Args:
        backbone: ``resnet18``, ``resnet50`` or a timm ViT name.
        num_classes: Classes for the online linear probe (0 or 1: no probe).
        batch_size_per_device: Batch size on each device; the lr scales with the global batch.
        image_size: Input size (ViT position embeddings).
        patch_size: ViT patch size (``None``: automatic).
        stem: ResNet stem: ``imagenet`` (7x7 stride-2 conv + max-pool; what mmdet's ResNet loads)
            or ``cifar`` (3x3 stride-1 conv, no max-pool; for 32 px images, not transferable).
        optimizer: ``sgd``, ``lars`` or ``adamw``.
        lr: Learning rate per 256 images.
        weight_decay: Weight decay (not applied to biases and norms).
        warmup_epochs: Linear warm-up length in epochs.
        gather_distributed: Gather embeddings over all processes in the loss (DDP).
        hidden_dim: Projector hidden width.
        output_dim: Projector (and predictor) output width d.
        pred_hidden_dim: Predictor hidden width.
        gamma: Weight of the alignment term.
        lamda: Scale of the identity target in the uniformity term.
        mu: Ridge added to every matrix inside the logarithm.
        taylor_order: Order of the Taylor matrix logarithm (``None``: exact).
        momentum_start: Teacher EMA momentum at the first step.
        momentum_end: Teacher EMA momentum at the last step.
    """

    method = "matrix_ssl"

    def __init__(
        self,
        backbone: str = "resnet50",
        num_classes: int = 1000,
        batch_size_per_device: int = 256,
        image_size: int = 224,
        patch_size: int | None = None,
        stem: str = "imagenet",
        optimizer: str = "sgd",
        lr: float = 0.5,
        weight_decay: float = 1e-5,
        warmup_epochs: float = 10.0,
        gather_distributed: bool = False,
        hidden_dim: int = 2048,
        output_dim: int = 2048,
        pred_hidden_dim: int = 512,
        gamma: float = 1.0,
        lamda: float = 1.0,
        mu: float = 1.0,
        taylor_order: int | None = 4,
        momentum_start: float = 0.996,
        momentum_end: float = 1.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        feature_dim = self._init_common(backbone, image_size, patch_size, num_classes, stem)
        self.projection_head = MatrixSSLProjectionHead(feature_dim, hidden_dim, output_dim)
        self.prediction_head = MatrixSSLPredictionHead(output_dim, pred_hidden_dim, output_dim)

        # The teacher is an exponential moving average of backbone + projector; it gets no gradient.
        self.teacher_backbone = copy.deepcopy(self.backbone)
        self.teacher_projection_head = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.teacher_backbone)
        deactivate_requires_grad(self.teacher_projection_head)

        self.criterion = MatrixSSLLoss(
            gamma=gamma,
            lamda=lamda,
            mu=mu,
            taylor_order=taylor_order,
            gather_distributed=gather_distributed,
        )

    def forward_student(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Returns backbone features, projection and prediction of the online network."""
        features = self.forward(x)
        projection = self.projection_head(features)
        return features, projection, self.prediction_head(projection)

    @no_grad()
    def forward_teacher(self, x: Tensor) -> Tensor:
        """Returns the teacher projection (no gradient)."""
        return self.teacher_projection_head(self.teacher_backbone(x).flatten(start_dim=1))

    def training_step(self, batch: tuple[list[Tensor], Tensor], batch_idx: int) -> Tensor:
        """One step on two views: ``0.5 * (loss(p1, z2) + loss(p2, z1))`` plus the online probe."""
        # Momentum follows the global step, so a resumed run continues the same schedule.
        momentum = cosine_schedule(
            step=self.trainer.global_step,
            max_steps=int(self.trainer.estimated_stepping_batches),
            start_value=self.hparams["momentum_start"],
            end_value=self.hparams["momentum_end"],
        )
        update_momentum(self.backbone, self.teacher_backbone, m=momentum)
        update_momentum(self.projection_head, self.teacher_projection_head, m=momentum)

        views, targets = batch[0], batch[1]
        features_1, projection_1, prediction_1 = self.forward_student(views[0])
        _, _, prediction_2 = self.forward_student(views[1])
        teacher_1 = self.forward_teacher(views[0])
        teacher_2 = self.forward_teacher(views[1])
        loss = 0.5 * (
            self.criterion(prediction_1, teacher_2) + self.criterion(prediction_2, teacher_1)
        )

        batch_size = len(targets)
        self.log_loss("train_loss", loss, batch_size, prog_bar=True)
        self.log("momentum", momentum, batch_size=batch_size)
        self.track_embeddings(backbone=features_1, projection=projection_1)
        return loss + self.online_probe(features_1, targets, batch_idx)
