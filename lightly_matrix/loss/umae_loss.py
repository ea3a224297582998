"""U-MAE's uniformity regulariser: the mean squared cosine similarity [0]."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from lightly_matrix.loss._common import (
    check_batch,
    check_gather_available,
    check_global_batch,
    check_number,
    gather_rows,
    no_autocast,
    to_compute_dtype,
)


class UMAELoss(nn.Module):
    """``mean((F F^T)^2)`` over all m x m entries, ``F`` the L2-normalised features [0].

    Added to the MAE loss with weight 0.01 in U-MAE (``weight=0.01`` returns it weighted). It
    is the second-order term of the expansion of :class:`~lightly_matrix.loss.MatrixEntropyLoss`
    (up to scale), so U-MAE is the special case of M-MAE that keeps only that term. The features
    are the encoder's CLS token, as for :class:`~lightly_matrix.loss.MatrixEntropyLoss`.

    - [0] Zhang et al., How Mask Matters: Towards Theoretical Understandings of Masked
      Autoencoders, NeurIPS 2022, https://arxiv.org/abs/2210.08344

    Attributes:
        gather_distributed: Gather features from all processes first (gradients stay correct);
            the global batch must have at least 2 rows, one row per process is enough.
            Without an initialised process group the local batch is used, as in Lightly's
            losses.
        weight: Factor applied to the returned value (finite, >= 0); U-MAE's ``lamb``.

    Raises:
        ValueError: If ``weight`` is NaN, infinite or negative, or gathering is unavailable.

    Examples:
        >>> import torch
        >>> from lightly_matrix.loss import UMAELoss
        >>> loss_fn = UMAELoss(weight=0.01)
        >>> cls_features = torch.randn(16, 192, requires_grad=True)
        >>> reg = loss_fn(cls_features)  # add to the MAE pixel loss
        >>> reg.backward()
    """

    def __init__(self, gather_distributed: bool = False, weight: float = 1.0) -> None:
        super().__init__()
        weight = check_number("weight", weight, low=0.0, hint="U-MAE's lamb; it uses 0.01.")
        check_gather_available(gather_distributed)
        self.gather_distributed = gather_distributed
        self.weight = weight

    def forward(self, features: Tensor) -> Tensor:
        """Regulariser value of one batch, times ``weight``.

        Args:
            features: Features of shape (batch, dim).

        Returns:
            Scalar tensor (float32, or float64 for float64 inputs).
        """
        name = type(self).__name__
        check_batch(name, features, min_rows=1 if self.gather_distributed else 2)
        with no_autocast(features):
            (f,) = to_compute_dtype(features)
            f = gather_rows(f, self.gather_distributed)
            check_global_batch(name, f, features.shape[0])
            f = F.normalize(f, dim=1)
            return self.weight * (f @ f.mT).pow(2).mean()
