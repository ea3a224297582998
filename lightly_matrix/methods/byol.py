"""BYOL (Grill et al., NeurIPS 2020) from Lightly's building blocks: the baseline that shares
Matrix-SSL's EMA teacher, momentum schedule and optimiser, so a comparison isolates the loss."""

from __future__ import annotations

from lightly.loss import NegativeCosineSimilarity
from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
from torch import Tensor

from lightly_matrix.methods.ema_teacher import EMATeacherModule


class BYOL(EMATeacherModule):
    """BYOL pretraining module with Lightly's heads and loss.

    Heads are BYOL's (Lightly's ``BYOLProjectionHead`` / ``BYOLPredictionHead``): projector
    ``Linear-BN-ReLU-Linear`` 2048-4096-256 and predictor 256-4096-256 (the paper's Sec. 3.3).
    The loss is Lightly's ``NegativeCosineSimilarity`` averaged over the two view pairs: the
    first-order term of MEC's loss, and BYOL's ``2 - 2 cos`` summed over both pairs up to a
    constant and a factor 4.

    Everything else is :class:`~lightly_matrix.methods.MatrixSSL`'s, with the same argument names
    and defaults: the EMA teacher of backbone + projector with momentum 0.996 -> 1 on a cosine
    schedule (BYOL's own), SGD with lr 0.5 per 256 images, weight decay 1e-5, 10 warm-up epochs
    (the Matrix-SSL authors' ImageNet ResNet-50 run). BYOL's own ImageNet recipe is LARS, lr 0.2
    per 256, weight decay 1.5e-6, batch 4096 (``--optimizer lars --lr 0.2 --weight-decay 1.5e-6``);
    ``hidden_dim=2048, output_dim=2048, pred_hidden_dim=512`` gives Matrix-SSL's head widths.

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
        lr: Learning rate per 256 images.
        weight_decay: Weight decay (on every parameter unless ``decay_norm_and_bias=False``).
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
        gather_distributed: Unused (the cosine loss is per sample); kept so every method accepts
            the flag the pretraining run sets under DDP.
        hidden_dim: Projector hidden width.
        output_dim: Projector (and predictor) output width.
        pred_hidden_dim: Predictor hidden width.
        momentum_start: Teacher EMA momentum at the first step.
        momentum_end: Teacher EMA momentum at the last step.
    """

    method = "byol"
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
        hidden_dim: int = 4096,
        output_dim: int = 256,
        pred_hidden_dim: int = 4096,
        momentum_start: float = 0.996,
        momentum_end: float = 1.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        feature_dim = self._init_common(
            backbone, image_size, patch_size, num_classes, stem, zero_init_residual
        )
        self.projection_head = BYOLProjectionHead(feature_dim, hidden_dim, output_dim)
        self.prediction_head = BYOLPredictionHead(output_dim, pred_hidden_dim, output_dim)
        self._init_teacher()
        self.criterion = NegativeCosineSimilarity()

    def pair_loss(self, online: Tensor, target: Tensor) -> Tensor:
        """``-mean cos(online, target)`` of one (online prediction, teacher projection) pair."""
        return self.criterion(online, target)
