"""Barlow Twins (Zbontar et al., 2021) from Lightly's building blocks.

A baseline under the same harness as the matrix-information methods.
"""

from __future__ import annotations

from typing import Any, ClassVar, Unpack

from lightly.loss import BarlowTwinsLoss
from lightly.models.modules import BarlowTwinsProjectionHead
from torch import Tensor

from lightly_matrix.methods.base import PretrainModule, SharedArgs


class BarlowTwins(PretrainModule):
    """Barlow Twins pretraining module, as in Lightly's ImageNet benchmark (LARS, lr 0.2 per 256).

    Shared arguments (backbone, batch, optimiser, schedule): see
    :class:`~lightly_matrix.methods.base.SharedArgs`; ``recipe`` holds this method's defaults.

    Args:
        hidden_dim: Projector hidden width.
        output_dim: Projector output width.
        lambda_param: Weight of the redundancy-reduction (off-diagonal) term.
    """

    method = "barlowtwins"
    default_transform = "byol"
    recipe: ClassVar[dict[str, Any]] = {
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
        self.save_hyperparameters()
        feature_dim = self._init_common()
        self.projection_head = BarlowTwinsProjectionHead(feature_dim, hidden_dim, output_dim)
        self.criterion = BarlowTwinsLoss(
            lambda_param=lambda_param, gather_distributed=self.hparams["gather_distributed"]
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
