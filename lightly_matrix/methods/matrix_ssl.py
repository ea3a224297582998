"""Matrix-SSL (Zhang et al., ICML 2024): BYOL-style online/EMA-teacher networks trained with matrix
cross-entropy (uniformity + gamma * alignment) between predictor outputs and teacher projections."""

from __future__ import annotations

from torch import Tensor

from lightly_matrix.loss import MatrixSSLLoss
from lightly_matrix.methods.ema_teacher import EMATeacherModule
from lightly_matrix.models.modules import MatrixSSLPredictionHead, MatrixSSLProjectionHead


class MatrixSSL(EMATeacherModule):
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

        # The teacher is an exponential moving average of backbone + projector.
        self._init_teacher()

        self.criterion = MatrixSSLLoss(
            gamma=gamma,
            lamda=lamda,
            mu=mu,
            taylor_order=taylor_order,
            gather_distributed=gather_distributed,
        )

    def pair_loss(self, online: Tensor, target: Tensor) -> Tensor:
        """Matrix cross-entropy of one (online prediction, teacher projection) pair."""
        return self.criterion(online, target)
