"""CorInfoMax (Ozsoy et al., NeurIPS 2022): a symmetric two-branch network trained to maximise the
log-determinant of running embedding covariances while keeping the two views' embeddings close."""

from __future__ import annotations

from torch import Tensor

from lightly_matrix.loss import CorInfoMaxLoss
from lightly_matrix.methods.base import PretrainModule
from lightly_matrix.models.modules import CorInfoMaxProjectionHead


class CorInfoMax(PretrainModule):
    """CorInfoMax pretraining module.

    Defaults are the authors' ImageNet-1k ResNet-50 setting (README command of
    serdarozsoy/corinfomax-ssl, ``imagenet1k/``), like every other method's defaults here:
    projector 8192-8192-512 with BatchNorm in the hidden layers, alpha 2000, la_R = la_mu = 0.1,
    eps 1e-8, normalised embeddings, ``zero_init_residual``; SGD (momentum 0.9) with an ABSOLUTE
    lr of 0.2 (no batch scaling) and weight decay 1e-4 on every parameter, stepped per epoch:
    linear warm-up from 3e-3 reaching the peak at epoch 9, then cosine to 1e-6
    (``LRscheduler.py``, ``optim_utils.py``). The CIFAR and ImageNet-100 settings (ResNet-18,
    2048-2048-64 without BN, alpha 250, lr 0.5, 32 px, ...) are the presets of
    :mod:`lightly_matrix.presets`. The stem defaults to ImageNet's (transferable to mmdet); the
    CIFAR presets set the authors' CIFAR stem (``stem="cifar"``). The running means and
    covariances live in ``criterion``'s float64 buffers, so checkpoints hold them and a resumed
    run continues exactly.

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
        lr: Learning rate (absolute with the default ``lr_scaling="none"``).
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
        gather_distributed: Gather embeddings over all processes so every rank holds the same R.
        hidden_dim: Projector hidden width.
        output_dim: Embedding size D.
        proj_batch_norm: BatchNorm in the projector's hidden layers (the ImageNet-1k setting).
        alpha: Weight of the invariance (mean squared error) term.
        cov_weight: Weight of the log-determinant term.
        la_R: Forgetting factor of the running covariances (weight of the OLD estimate).
        la_mu: Forgetting factor of the running means.
        R_ini: Initial covariance ``R_ini * I``.
        eps: Ridge added before the log-determinant.
    """

    method = "corinfomax"
    default_transform = "corinfomax"

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
        lr: float = 0.2,
        weight_decay: float = 1e-4,
        warmup_epochs: float = 10.0,
        lr_scaling: str = "none",
        lr_interval: str = "epoch",
        warmup_style: str = "linspace",
        warmup_start_lr: float = 0.003,
        final_lr: float = 1e-06,
        decay_norm_and_bias: bool = True,
        gather_distributed: bool = False,
        hidden_dim: int = 8192,
        output_dim: int = 512,
        proj_batch_norm: bool = True,
        alpha: float = 2000.0,
        cov_weight: float = 1.0,
        la_R: float = 0.1,
        la_mu: float = 0.1,
        R_ini: float = 1.0,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        feature_dim = self._init_common(
            backbone, image_size, patch_size, num_classes, stem, zero_init_residual
        )
        self.projection_head = CorInfoMaxProjectionHead(
            feature_dim, hidden_dim, output_dim, batch_norm=proj_batch_norm
        )
        self.criterion = CorInfoMaxLoss(
            output_dim,
            alpha=alpha,
            cov_weight=cov_weight,
            la_R=la_R,
            la_mu=la_mu,
            R_ini=R_ini,
            eps=eps,
            normalize=True,
            gather_distributed=gather_distributed,
        )

    def training_step(self, batch: tuple[list[Tensor], Tensor], batch_idx: int) -> Tensor:
        """One step on two views; the loss updates the running statistics in training mode."""
        views, targets = batch[0], batch[1]
        features_1 = self.forward(views[0])
        projection_1 = self.projection_head(features_1)
        projection_2 = self.projection_head(self.forward(views[1]))
        loss = self.criterion(projection_1, projection_2)

        self.log_loss("train_loss", loss, len(targets), prog_bar=True)
        self.track_embeddings(backbone=features_1, projection=projection_1)
        return loss + self.online_probe(features_1, targets, batch_idx)
