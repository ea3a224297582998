"""Matrix-SSL loss: matrix uniformity plus matrix alignment [0]."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from lightly_matrix.functional.matrix_cross_entropy import mce_alignment, mce_uniformity
from lightly_matrix.loss._common import (
    check_batch,
    check_gather_available,
    gather_rows,
    no_autocast,
    to_compute_dtype,
)


class MatrixSSLLoss(nn.Module):
    """Matrix-SSL loss of one (online, target) pair, as proposed in [0].

    With ``p`` the target and ``z`` the online embeddings (gathered over processes if
    ``gather_distributed``, then L2-normalised per row) and ``J_m`` the centering matrix:

    - uniformity ``U = MCE(lamda I, p^T J_m z / m + mu I)``,
    - alignment ``A = MCE(p^T J_m p / m + mu I, z^T J_m z / m + mu I)``,
    - loss ``U + gamma * A`` with ``MCE(P, Q) = tr(-P log Q)``.

    ``log`` is the authors' 4th-order Taylor series around the identity by default, or the exact
    matrix logarithm with ``taylor_order=None``. The paper's ``+ tr(Q)`` term of the matrix
    cross-entropy is omitted as in the authors' code: it adds no gradient to the uniformity term
    and only shifts the value of the alignment term by ``tr(S_z)``.

    No d x d matrix is ever formed: every trace is computed on the smaller of the m x m and
    d x d sides (see :mod:`lightly_matrix.functional.matrix_cross_entropy`), which is the same
    value at a fraction of the cost when the batch is smaller than the embedding dimension.
    The matrix math runs in float32 (float64 for float64 inputs) outside autocast.

    - [0] Zhang et al., Matrix Information Theory for Self-Supervised Learning, ICML 2024,
      https://arxiv.org/abs/2305.17326

    Attributes:
        gamma: Weight of the alignment term.
        lamda: Scale of the identity target of the uniformity term.
        mu: Ridge ``mu * I`` added to every covariance.
        taylor_order: Terms of the Taylor logarithm, or None for the exact logarithm.
        gather_distributed: If True, gather embeddings from all processes before the loss, so
            it is computed over the global batch (gradients stay correct).

    Raises:
        ValueError: If a hyper-parameter is out of range or gathering is unavailable.

    Examples:
        >>> import torch
        >>> from lightly_matrix.loss import MatrixSSLLoss
        >>> loss_fn = MatrixSSLLoss()
        >>> # p0, p1: predictor outputs of the online network for the two views;
        >>> # z0, z1: projections of the EMA teacher (no gradient), as in BYOL.
        >>> p0, p1 = torch.randn(32, 128, requires_grad=True), torch.randn(32, 128)
        >>> z0, z1 = torch.randn(32, 128), torch.randn(32, 128)
        >>> loss = 0.5 * (loss_fn(p0, z1) + loss_fn(p1, z0))
        >>> loss.backward()
    """

    def __init__(
        self,
        gamma: float = 1.0,
        lamda: float = 1.0,
        mu: float = 1.0,
        taylor_order: int | None = 4,
        gather_distributed: bool = False,
    ) -> None:
        super().__init__()
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}; it weighs the alignment term.")
        if lamda <= 0:
            raise ValueError(f"lamda must be > 0, got {lamda}; the paper's runs use 1.0.")
        if mu <= 0:
            raise ValueError(
                f"mu must be > 0, got {mu}; the ridge mu * I keeps the logarithm defined (use 1.0)."
            )
        if taylor_order is not None and (
            not isinstance(taylor_order, int) or isinstance(taylor_order, bool) or taylor_order < 1
        ):
            raise ValueError(
                "taylor_order must be a positive int or None (exact logarithm), "
                f"got {taylor_order!r}."
            )
        check_gather_available(gather_distributed)
        self.gamma = gamma
        self.lamda = lamda
        self.mu = mu
        self.taylor_order = taylor_order
        self.gather_distributed = gather_distributed

    def forward(self, online: Tensor, target: Tensor) -> Tensor:
        """Loss of one pair.

        Args:
            online: Online predictor output of shape (batch, dim); receives the gradient.
            target: Teacher projection of shape (batch, dim); plays P in the alignment term.

        Returns:
            Scalar loss (float32, or float64 for float64 inputs).
        """
        check_batch(type(self).__name__, online, target)
        with no_autocast(online):
            z, p = to_compute_dtype(online, target)
            z = gather_rows(z, self.gather_distributed)
            p = gather_rows(p, self.gather_distributed)
            z, p = F.normalize(z, dim=1), F.normalize(p, dim=1)
            uniformity = mce_uniformity(p, z, self.lamda, self.mu, self.taylor_order)
            alignment = mce_alignment(p, z, self.mu, self.taylor_order)
            return uniformity + self.gamma * alignment
