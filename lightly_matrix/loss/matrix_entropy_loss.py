"""M-MAE's matrix-entropy (total coding rate) regulariser [0]."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from lightly_matrix.functional._linalg import logdet_identity_plus_gram
from lightly_matrix.loss._common import (
    check_batch,
    check_gather_available,
    gather_rows,
    no_autocast,
    to_compute_dtype,
)


class MatrixEntropyLoss(nn.Module):
    """Negative total coding rate ``-logdet(I_d + mu / d * F^T F)``, M-MAE's regulariser [0].

    ``F`` holds the (gathered, then L2-normalised, optionally centred) features, one row per
    sample. The divisor is the feature dimension ``d``, not the batch size, and there is no 1/2
    factor, as in the authors' code. By Sylvester's identity the log-determinant is computed on
    the ``min(m, d)`` side. Add it to the MAE loss as ``loss_mae + lamb * reg`` (the authors'
    ViT-L run: ``lamb = 0.01``, ``mu = 3``). Its second-order expansion is U-MAE's square
    term (:class:`~lightly_matrix.loss.UMAELoss`), which is why M-MAE subsumes U-MAE.

    - [0] Yang et al., Information Flow in Self-Supervised Learning,
      https://arxiv.org/abs/2309.17281

    Attributes:
        mu: Scale of the Gram term.
        centering: Subtract the batch mean of the normalised features first.
        gather_distributed: Gather features from all processes first (gradients stay correct).

    Raises:
        ValueError: If ``mu`` is not positive or gathering is unavailable.

    Examples:
        >>> import torch
        >>> from lightly_matrix.loss import MatrixEntropyLoss
        >>> reg_fn = MatrixEntropyLoss(mu=3.0)
        >>> cls_features = torch.randn(16, 192, requires_grad=True)  # encoder CLS tokens
        >>> reg = reg_fn(cls_features)
        >>> reg.backward()
    """

    def __init__(
        self, mu: float = 1.0, centering: bool = False, gather_distributed: bool = False
    ) -> None:
        super().__init__()
        if mu <= 0:
            raise ValueError(f"mu must be > 0, got {mu}; the authors use 1 (default) or 3.")
        check_gather_available(gather_distributed)
        self.mu = mu
        self.centering = centering
        self.gather_distributed = gather_distributed

    def forward(self, features: Tensor) -> Tensor:
        """Regulariser value of one batch.

        Args:
            features: Features of shape (batch, dim), e.g. the encoder's CLS token.

        Returns:
            Scalar tensor (float32, or float64 for float64 inputs).
        """
        check_batch(type(self).__name__, features)
        with no_autocast(features):
            (f,) = to_compute_dtype(features)
            f = F.normalize(gather_rows(f, self.gather_distributed), dim=1)
            if self.centering:
                f = f - f.mean(dim=0, keepdim=True)
            return -logdet_identity_plus_gram(f, self.mu / f.shape[1])
