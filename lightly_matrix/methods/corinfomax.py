"""CorInfoMax [0]: two branches, the log-determinant of running covariances plus alignment.

- [0] Ozsoy et al., Self-Supervised Learning with an Information Maximization Criterion,
  NeurIPS 2022, https://arxiv.org/abs/2209.07999
"""

from __future__ import annotations

from typing import Any, ClassVar, Unpack

from lightly_matrix.loss import CorInfoMaxLoss
from lightly_matrix.methods.base import PretrainModule, SharedArgs
from lightly_matrix.models.modules import CorInfoMaxProjectionHead


class CorInfoMax(PretrainModule):
    """CorInfoMax pretraining module [0].

    Defaults are the authors' ImageNet-1k ResNet-50 setting (serdarozsoy/corinfomax-ssl README):
    an ABSOLUTE lr stepped per epoch, warm-up from 3e-3 peaking at epoch 9, cosine to 1e-6; other
    datasets are presets (``--list-presets``). Checkpoints hold the criterion's running statistics.
    Shared arguments: :class:`SharedArgs`.

    Args:
        hidden_dim: Projector hidden width.
        output_dim: Embedding size D.
        proj_batch_norm: BatchNorm in the projector's hidden layers (the ImageNet-1k setting).
        alpha: Weight of the invariance (mean squared error) term.
        cov_weight: Weight of the log-determinant term.
        cov_momentum: Weight of the OLD running covariance (the authors' ``la_R``).
        mean_momentum: Forgetting factor of the running means (the authors' ``la_mu``).
        cov_init: Initial covariance ``cov_init * I`` (the authors' ``R_ini``).
        eps: Ridge added before the log-determinant.
    """

    method = "corinfomax"
    default_transform = "corinfomax"
    shared_defaults: ClassVar[dict[str, Any]] = {
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
        self.projection_head = CorInfoMaxProjectionHead(
            self.feature_dim, hidden_dim, output_dim, batch_norm=proj_batch_norm
        )
        self.criterion = CorInfoMaxLoss(
            output_dim,
            alpha=alpha,
            cov_weight=cov_weight,
            cov_momentum=cov_momentum,
            mean_momentum=mean_momentum,
            cov_init=cov_init,
            eps=eps,
            gather_distributed=self.hparams["gather_distributed"],
        )
