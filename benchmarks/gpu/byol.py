"""BYOL (Grill et al., 2020) from Lightly's heads and loss: the outside yardstick of the suite.

Lightly 1.6 ships no importable benchmark BYOL module (its ImageNet benchmarks live in the
repository, not the package), so this module assembles BYOL from Lightly's building blocks with
the settings of Lightly's ImageNet ResNet-50 benchmark: projector 2048-4096-256, predictor
256-4096-256, negative cosine similarity on both view pairs, EMA teacher with momentum 0.99 -> 1
on a cosine schedule, LARS with lr 0.45 per 256 images and weight decay 1e-6. It runs in the same
harness as our methods (:class:`lightly_matrix.methods.PretrainModule`: optimiser groups,
schedule, online probe), and has the same online/teacher structure as Matrix-SSL, which makes it
the like-for-like reference for Matrix-SSL's throughput.
"""

from __future__ import annotations

import copy

from lightly.loss import NegativeCosineSimilarity
from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
from lightly.models.utils import deactivate_requires_grad, update_momentum
from lightly.utils.scheduler import cosine_schedule
from torch import Tensor, no_grad

from lightly_matrix.methods.base import PretrainModule


class BYOL(PretrainModule):
    """BYOL pretraining module (benchmark yardstick, not part of the package).

    Args:
        backbone: ``resnet18``, ``resnet50`` or a timm ViT name.
        num_classes: Classes for the online linear probe (0 or 1: no probe).
        batch_size_per_device: Batch size on each device; the lr scales with the global batch.
        image_size: Input size (ViT position embeddings).
        patch_size: ViT patch size (``None``: automatic).
        optimizer: ``sgd``, ``lars`` or ``adamw``.
        lr: Learning rate per 256 images.
        weight_decay: Weight decay (not applied to biases and norms).
        warmup_epochs: Linear warm-up length in epochs.
        hidden_dim: Projector and predictor hidden width.
        output_dim: Projection size.
        momentum_start: Teacher EMA momentum at the first step.
        momentum_end: Teacher EMA momentum at the last step.

    Examples:
        >>> model = BYOL(backbone="resnet18", num_classes=0, hidden_dim=64, output_dim=32)
        >>> model.prediction_head.layers[0].in_features
        32
    """

    method = "byol"

    def __init__(
        self,
        backbone: str = "resnet50",
        num_classes: int = 1000,
        batch_size_per_device: int = 256,
        image_size: int = 224,
        patch_size: int | None = None,
        optimizer: str = "lars",
        lr: float = 0.45,
        weight_decay: float = 1e-6,
        warmup_epochs: float = 10.0,
        hidden_dim: int = 4096,
        output_dim: int = 256,
        momentum_start: float = 0.99,
        momentum_end: float = 1.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        feature_dim = self._init_common(backbone, image_size, patch_size, num_classes)
        self.projection_head = BYOLProjectionHead(feature_dim, hidden_dim, output_dim)
        self.prediction_head = BYOLPredictionHead(output_dim, hidden_dim, output_dim)
        self.teacher_backbone = copy.deepcopy(self.backbone)
        self.teacher_projection_head = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.teacher_backbone)
        deactivate_requires_grad(self.teacher_projection_head)
        self.criterion = NegativeCosineSimilarity()

    @no_grad()
    def forward_teacher(self, x: Tensor) -> Tensor:
        """Teacher projection (no gradient)."""
        return self.teacher_projection_head(self.teacher_backbone(x).flatten(start_dim=1))

    def training_step(self, batch: tuple[list[Tensor], Tensor], batch_idx: int) -> Tensor:
        """One step on two views: ``0.5 * (loss(p1, z2) + loss(p2, z1))`` plus the online probe."""
        momentum = cosine_schedule(
            step=self.trainer.global_step,
            max_steps=int(self.trainer.estimated_stepping_batches),
            start_value=self.hparams["momentum_start"],
            end_value=self.hparams["momentum_end"],
        )
        update_momentum(self.backbone, self.teacher_backbone, m=momentum)
        update_momentum(self.projection_head, self.teacher_projection_head, m=momentum)
        views, targets = batch[0], batch[1]
        features_1 = self.forward(views[0])
        prediction_1 = self.prediction_head(self.projection_head(features_1))
        prediction_2 = self.prediction_head(self.projection_head(self.forward(views[1])))
        teacher_1 = self.forward_teacher(views[0])
        teacher_2 = self.forward_teacher(views[1])
        loss_1 = self.criterion(prediction_1, teacher_2)
        loss = 0.5 * (loss_1 + self.criterion(prediction_2, teacher_1))
        self.log_loss("train_loss", loss, len(targets), prog_bar=True)
        self.track_embeddings(backbone=features_1)
        return loss + self.online_probe(features_1, targets, batch_idx)
