"""M-MAE (Yang et al., 2023): MAE plus the matrix-entropy (TCR) regulariser on CLS features."""

from __future__ import annotations

from torch import nn

from lightly_matrix.loss import MatrixEntropyLoss
from lightly_matrix.methods.mae import MAE


class MMAE(MAE):
    """M-MAE pretraining module: :class:`~lightly_matrix.methods.mae.MAE` with the TCR regulariser.

    Same arguments as MAE; ``reg_weight`` defaults to 0.01. Our gather keeps every rank's gradient.
    """

    method = "mmae"
    default_reg_weight = 0.01

    def build_regularizer(self) -> nn.Module:
        """The TCR term (matrix entropy loss), gathered across processes under DDP."""
        return MatrixEntropyLoss(
            gram_scale=self.hparams["gram_scale"],
            centering=self.hparams["centering"],
            gather_distributed=self.hparams["gather_distributed"],
        )
