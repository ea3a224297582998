"""U-MAE (Zhang et al., NeurIPS 2022): MAE plus the square uniformity term on CLS features."""

from __future__ import annotations

from torch import nn

from lightly_matrix.loss import UMAELoss
from lightly_matrix.methods.mae import MAE


class UMAE(MAE):
    """U-MAE pretraining module: :class:`~lightly_matrix.methods.mae.MAE` with the square term.

    As MAE; ``reg_weight`` defaults to U-MAE's 0.01; ``gram_scale`` and ``centering`` are unused.
    """

    method = "umae"
    default_reg_weight = 0.01

    def build_regularizer(self) -> nn.Module:
        """The square uniformity term, gathered across processes under DDP."""
        return UMAELoss(gather_distributed=self.hparams["gather_distributed"])
