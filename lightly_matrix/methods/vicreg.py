"""VICReg (Bardes et al., ICLR 2022) from Lightly's building blocks, as a baseline."""

from __future__ import annotations

from typing import Any, ClassVar, Unpack

from lightly.loss import VICRegLoss
from lightly.models.modules.heads import VICRegProjectionHead

from lightly_matrix.methods.base import PretrainModule, SharedArgs


class VICReg(PretrainModule):
    """VICReg pretraining module, as Lightly's ``benchmarks/imagenet/resnet50/vicreg.py``.

    LARS with lr 0.3 per 256 images (Lightly's, for batches >= 1024), weight decay 1e-6 (the
    authors'). Shared arguments: :class:`~lightly_matrix.methods.base.SharedArgs`.

    Args:
        hidden_dim: Projector hidden width.
        output_dim: Projector output width.
        lambda_param: Weight of the invariance term.
        mu_param: Weight of the variance term.
        nu_param: Weight of the covariance term.
    """

    method = "vicreg"
    default_transform = "vicreg"
    shared_defaults: ClassVar[dict[str, Any]] = {
        "optimizer": "lars",
        "lr": 0.3,
        "weight_decay": 1e-6,
    }

    def __init__(
        self,
        *,
        hidden_dim: int = 8192,
        output_dim: int = 8192,
        lambda_param: float = 25.0,
        mu_param: float = 25.0,
        nu_param: float = 1.0,
        **shared: Unpack[SharedArgs],
    ) -> None:
        super().__init__()
        self.projection_head = VICRegProjectionHead(self.feature_dim, hidden_dim, output_dim, 3)
        self.criterion = VICRegLoss(
            lambda_param=lambda_param,
            mu_param=mu_param,
            nu_param=nu_param,
            gather_distributed=self.hparams["gather_distributed"],
        )
