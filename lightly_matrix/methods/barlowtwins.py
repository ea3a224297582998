"""Barlow Twins (Zbontar et al., 2021) from Lightly's building blocks.

A baseline under the same harness as the matrix-information methods.
"""

from __future__ import annotations

from lightly.loss import BarlowTwinsLoss
from lightly.models.modules import BarlowTwinsProjectionHead
from torch import Tensor

from lightly_matrix.methods.base import PretrainModule


class BarlowTwins(PretrainModule):
    """Barlow Twins pretraining module, as in Lightly's ImageNet benchmark (LARS, lr 0.2 per 256).

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
        weight_decay: Weight decay (not applied to biases and norms unless
            ``decay_norm_and_bias``).
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
        output_dim: Projector output width.
        lambda_param: Weight of the redundancy-reduction (off-diagonal) term.
    """

    method = "barlowtwins"
    default_transform = "byol"

    def __init__(
        self,
        backbone: str = "resnet50",
        num_classes: int = 1000,
        batch_size_per_device: int = 256,
        image_size: int = 224,
        patch_size: int | None = None,
        stem: str = "imagenet",
        zero_init_residual: bool = False,
        optimizer: str = "lars",
        lr: float = 0.2,
        weight_decay: float = 1.5e-6,
        warmup_epochs: float = 10.0,
        lr_scaling: str = "linear",
        lr_interval: str = "step",
        warmup_style: str = "fraction",
        warmup_start_lr: float = 0.0,
        final_lr: float = 0.0,
        decay_norm_and_bias: bool = False,
        gather_distributed: bool = False,
        hidden_dim: int = 8192,
        output_dim: int = 8192,
        lambda_param: float = 5e-3,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        feature_dim = self._init_common(
            backbone, image_size, patch_size, num_classes, stem, zero_init_residual
        )
        self.projection_head = BarlowTwinsProjectionHead(feature_dim, hidden_dim, output_dim)
        self.criterion = BarlowTwinsLoss(
            lambda_param=lambda_param, gather_distributed=gather_distributed
        )

    def training_step(self, batch: tuple[list[Tensor], Tensor], batch_idx: int) -> Tensor:
        """One step on two views."""
        views, targets = batch[0], batch[1]
        features_1 = self.forward(views[0])
        projection_1 = self.projection_head(features_1)
        projection_2 = self.projection_head(self.forward(views[1]))
        loss = self.criterion(projection_1, projection_2)

        self.log_loss("train_loss", loss, len(targets), prog_bar=True)
        self.track_embeddings(backbone=features_1, projection=projection_1)
        return loss + self.online_probe(features_1, targets, batch_idx)
