"""CorInfoMax (Ozsoy et al., NeurIPS 2022): a symmetric two-branch network trained to maximise the
log-determinant of running embedding covariances while keeping the two views' embeddings close."""

from __future__ import annotations

from typing import Any, ClassVar, Unpack

from torch import Tensor

from lightly_matrix.loss import CorInfoMaxLoss
from lightly_matrix.methods.base import PretrainModule, SharedArgs
from lightly_matrix.models.modules import CorInfoMaxProjectionHead


class CorInfoMax(PretrainModule):
    """CorInfoMax pretraining module.

    Defaults are the authors' ImageNet-1k ResNet-50 setting (README command of
    serdarozsoy/corinfomax-ssl, ``imagenet1k/``), like every other method's defaults here:
    projector 8192-8192-512 with BatchNorm in the hidden layers, alpha 2000, cov_momentum =
    mean_momentum = 0.1, eps 1e-8, normalised embeddings, ``zero_init_residual``; SGD (momentum
    0.9) with an ABSOLUTE lr of 0.2 (no batch scaling) and weight decay 1e-4 on every parameter,
    stepped per epoch: linear warm-up from 3e-3 reaching the peak at epoch 9, then cosine to
    1e-6 (``LRscheduler.py``, ``optim_utils.py``). The CIFAR and ImageNet-100 settings
    (ResNet-18, 2048-2048-64 without BN, alpha 250, lr 0.5, 32 px, ...) are the presets of
    :mod:`lightly_matrix.presets`. The stem defaults to ImageNet's (transferable to mmdet); the
    CIFAR presets set the authors' CIFAR stem (``stem="cifar"``). The running means and
    covariances live in ``criterion``'s float64 buffers, so checkpoints hold them and a resumed
    run continues exactly.

    Shared arguments (backbone, batch, optimiser, schedule): see
    :class:`~lightly_matrix.methods.base.SharedArgs`; ``recipe`` holds this method's defaults.

    Args:
        hidden_dim: Projector hidden width.
        output_dim: Embedding size D.
        proj_batch_norm: BatchNorm in the projector's hidden layers (the ImageNet-1k setting).
        alpha: Weight of the invariance (mean squared error) term.
        cov_weight: Weight of the log-determinant term.
        cov_momentum: Forgetting factor of the running covariances (weight of the OLD
            estimate; the authors' ``la_R``).
        mean_momentum: Forgetting factor of the running means (the authors' ``la_mu``).
        cov_init: Initial covariance ``cov_init * I`` (the authors' ``R_ini``). The authors'
            names still work, with a ``DeprecationWarning``.
        eps: Ridge added before the log-determinant.
    """

    method = "corinfomax"
    default_transform = "corinfomax"
    recipe: ClassVar[dict[str, Any]] = {
        "zero_init_residual": True,
        "lr": 0.2,
        "weight_decay": 1e-4,
        "lr_scaling": "none",
        "lr_interval": "epoch",
        "warmup_style": "linspace",
        "warmup_start_lr": 0.003,
        "final_lr": 1e-06,
        "decay_norm_and_bias": True,
    }
    renamed: ClassVar[dict[str, str]] = {
        "la_R": "cov_momentum",
        "la_mu": "mean_momentum",
        "R_ini": "cov_init",
    }

    def __init__(
        self,
        *,
        hidden_dim: int = 8192,
        output_dim: int = 512,
        proj_batch_norm: bool = True,
        alpha: float = 2000.0,
        cov_weight: float = 1.0,
        cov_momentum: float = 0.1,
        mean_momentum: float = 0.1,
        cov_init: float = 1.0,
        eps: float = 1e-8,
        **shared: Unpack[SharedArgs],
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        feature_dim = self._init_common()
        hp = self.hparams
        self.projection_head = CorInfoMaxProjectionHead(
            feature_dim, hp["hidden_dim"], hp["output_dim"], batch_norm=hp["proj_batch_norm"]
        )
        self.criterion = CorInfoMaxLoss(
            hp["output_dim"],
            alpha=hp["alpha"],
            cov_weight=hp["cov_weight"],
            cov_momentum=hp["cov_momentum"],
            mean_momentum=hp["mean_momentum"],
            cov_init=hp["cov_init"],
            eps=hp["eps"],
            normalize=True,
            gather_distributed=hp["gather_distributed"],
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
