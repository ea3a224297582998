"""Matrix-SSL (Zhang et al., ICML 2024): BYOL-style online/EMA-teacher networks trained with matrix
cross-entropy (uniformity + gamma * alignment) between predictor outputs and teacher projections."""

from __future__ import annotations

from torch import Tensor

from lightly_matrix.loss import MatrixSSLLoss
from lightly_matrix.methods.ema_teacher import EMATeacherModule
from lightly_matrix.models.modules import MatrixSSLPredictionHead, MatrixSSLProjectionHead


class MatrixSSL(EMATeacherModule):
    """Matrix-SSL pretraining module.

    Defaults are the authors' ImageNet ResNet-50 run (``main_pretrain.py`` of
    yifanzhang-pro/Matrix-SSL with the README's ``--mce_mu 1 --mce_lambd 1 --gamma 1``): ResNet-50
    with ``zero_init_residual``, projector 2048-2048-2048 (last BN without affine), predictor
    2048-512-2048, SGD (momentum 0.9) with lr 0.5 per 256 images and weight decay 1e-5 on every
    parameter, per-step linear warm-up from 0 over 10 epochs then cosine to 0, teacher momentum
    0.996 -> 1 on a per-step cosine applied after each optimizer step, Taylor order 4.

    Args:
        backbone: ``resnet18``, ``resnet50`` or a timm ViT name.
        num_classes: Classes for the online linear probe (0 or 1: no probe).
        batch_size_per_device: Batch size on each device; the lr scales with the global batch.
        image_size: Input size (ViT position embeddings).
        patch_size: ViT patch size (``None``: automatic).
        stem: ResNet stem: ``imagenet`` (7x7 stride-2 conv + max-pool; what mmdet's ResNet loads)
            or ``cifar`` (3x3 stride-1 conv, no max-pool; for 32 px images, not transferable).
        zero_init_residual: Zero-initialise the last BatchNorm of each residual block.
        optimizer: ``sgd``, ``lars`` or ``adamw``.
        lr: Learning rate (per 256 images of the global batch with ``lr_scaling="linear"``).
        weight_decay: Weight decay.
        warmup_epochs: Linear warm-up length in epochs.
        lr_scaling: ``"linear"``: ``lr`` is per 256 images of the global batch; ``"none"``:
            ``lr`` is the peak lr as given.
        lr_interval: Step the lr schedule per optimizer ``"step"`` or per ``"epoch"``.
        warmup_style: ``"linspace"`` (the peak at the last warm-up unit) or ``"fraction"``
            (the peak right after it); see :mod:`lightly_matrix.methods._schedules`.
        warmup_start_lr: The lr at the first warm-up unit.
        final_lr: The lr the cosine decays to at the end of the run.
        decay_norm_and_bias: Weight-decay every parameter (``True``) or leave biases and
            norm parameters out (``False``, Lightly's rule).
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
    default_transform = "mocov3"

    def __init__(
        self,
        backbone: str = "resnet50",
        num_classes: int = 1000,
        batch_size_per_device: int = 256,
        image_size: int = 224,
        patch_size: int | None = None,
        stem: str = "imagenet",
        zero_init_residual: bool = True,
        optimizer: str = "sgd",
        lr: float = 0.5,
        weight_decay: float = 1e-5,
        warmup_epochs: float = 10.0,
        lr_scaling: str = "linear",
        lr_interval: str = "step",
        warmup_style: str = "linspace",
        warmup_start_lr: float = 0.0,
        final_lr: float = 0.0,
        decay_norm_and_bias: bool = True,
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
        feature_dim = self._init_common(
            backbone, image_size, patch_size, num_classes, stem, zero_init_residual
        )
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
