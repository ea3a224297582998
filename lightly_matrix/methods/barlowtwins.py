"""Barlow Twins (Zbontar et al., ICML 2021) from Lightly's building blocks, as a baseline."""

from __future__ import annotations

from typing import Any, ClassVar, Unpack

from lightly.loss import BarlowTwinsLoss
from lightly.models.modules import BarlowTwinsProjectionHead

from lightly_matrix.methods.base import PretrainModule, SharedArgs


class BarlowTwins(PretrainModule):
    """Barlow Twins pretraining module, as in Lightly's ImageNet benchmark (LARS, lr 0.2 per 256).

    Shared arguments: :class:`~lightly_matrix.methods.base.SharedArgs`.

    Args:
        hidden_dim: Projector hidden width.
        output_dim: Projector output width.
        lambda_param: Weight of the redundancy-reduction (off-diagonal) term.
    """

    method = "barlowtwins"
    shared_defaults: ClassVar[dict[str, Any]] = {
        "optimizer": "lars",
        "lr": 0.2,
        "weight_decay": 1.5e-6,
    }

    def __init__(
        self,
        *,
        hidden_dim: int = 8192,
        output_dim: int = 8192,
        lambda_param: float = 5e-3,
        **shared: Unpack[SharedArgs],
    ) -> None:
        super().__init__()
        self.projection_head = BarlowTwinsProjectionHead(self.feature_dim, hidden_dim, output_dim)
        self.criterion = BarlowTwinsLoss(
            lambda_param=lambda_param, gather_distributed=self.hparams["gather_distributed"]
        )
