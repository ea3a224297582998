"""U-MAE's uniformity regulariser: the mean squared cosine similarity [0]."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from lightly_matrix.loss._common import (
    check_batch,
    check_gather_available,
    gather_rows,
    no_autocast,
    to_compute_dtype,
)


class UMAELoss(nn.Module):
    """``mean((F F^T)^2)`` over all m x m entries, ``F`` the L2-normalised features [0].

    Added to the MAE loss with weight 0.01 in U-MAE. It is the second-order term of the
    expansion of :class:`~lightly_matrix.loss.MatrixEntropyLoss` (up to scale), so U-MAE is the
    special case of M-MAE that keeps only that term.

    - [0] Zhang et al., How Mask Matters: Towards Theoretical Understandings of Masked
      Autoencoders, NeurIPS 2022, https://arxiv.org/abs/2210.08344

    Attributes:
        gather_distributed: Gather features from all processes first (gradients stay correct).

    Raises:
        ValueError: If gathering is unavailable.

    Examples:
        >>> import torch
        >>> from lightly_matrix.loss import UMAELoss
        >>> loss_fn = UMAELoss()
        >>> cls_features = torch.randn(16, 192, requires_grad=True)
        >>> reg = loss_fn(cls_features)
        >>> reg.backward()
    """

    def __init__(self, gather_distributed: bool = False) -> None:
        super().__init__()
        check_gather_available(gather_distributed)
        self.gather_distributed = gather_distributed

    def forward(self, features: Tensor) -> Tensor:
        """Regulariser value of one batch.

        Args:
            features: Features of shape (batch, dim).

        Returns:
            Scalar tensor (float32, or float64 for float64 inputs).
        """
        check_batch(type(self).__name__, features)
        with no_autocast(features):
            (f,) = to_compute_dtype(features)
            f = F.normalize(gather_rows(f, self.gather_distributed), dim=1)
            return (f @ f.mT).pow(2).mean()
