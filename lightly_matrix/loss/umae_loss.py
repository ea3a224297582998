"""U-MAE's uniformity regulariser: the mean squared cosine similarity [0]."""

from __future__ import annotations

from torch import Tensor

from lightly_matrix.loss._common import BatchLoss, check_number


class UMAELoss(BatchLoss):
    """``mean((F F^T)^2)`` over all m x m entries, ``F`` the L2-normalised features [0].

    U-MAE adds it to the MAE loss with weight 0.01; up to scale, it is the second-order term of
    :class:`~lightly_matrix.loss.MatrixEntropyLoss`.

    - [0] Zhang et al., How Mask Matters: Towards Theoretical Understandings of Masked
      Autoencoders, NeurIPS 2022, https://arxiv.org/abs/2210.08344

    Args:
        gather_distributed: See :class:`~lightly_matrix.loss.BatchLoss`.
        weight: Factor applied to the returned value (finite, >= 0); U-MAE's ``lamb``.

    Examples:
        >>> import torch
        >>> from lightly_matrix.loss import UMAELoss
        >>> loss_fn = UMAELoss(weight=0.01)
        >>> cls_features = torch.randn(16, 192, requires_grad=True)
        >>> loss_fn(cls_features).backward()  # added to the MAE pixel loss
    """

    def __init__(self, gather_distributed: bool = False, weight: float = 1.0) -> None:
        super().__init__(gather_distributed)
        self.weight = check_number("weight", weight, low=0.0, hint="U-MAE's lamb; it uses 0.01.")

    def forward(self, features: Tensor) -> Tensor:
        """Regulariser value of one batch (features of shape (batch, dim)), times ``weight``."""
        with self.global_batch(features) as (f,):
            return self.weight * (f @ f.mT).pow(2).mean()
