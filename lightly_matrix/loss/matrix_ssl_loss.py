"""Matrix-SSL loss: matrix uniformity plus matrix alignment [0]."""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from lightly_matrix.functional.matrix_cross_entropy import mce_alignment, mce_uniformity
from lightly_matrix.loss._common import (
    check_batch,
    check_gather_available,
    check_global_batch,
    check_number,
    gather_rows,
    no_autocast,
    to_compute_dtype,
)
from lightly_matrix.utils.checks import check_positive_int
from lightly_matrix.utils.deprecation import resolve_renamed


class MatrixSSLLoss(nn.Module):
    """Matrix-SSL loss of one (online, target) pair, as proposed in [0].

    The letters are the paper's and the authors' code's: ``z`` is the ONLINE output (predictor
    of the student network, receives the gradient) and ``p`` the TARGET (projection of the EMA
    teacher, no gradient); the call is ``loss_fn(z, p)``, i.e. ``loss_fn(online, target)``.
    The loss is not symmetric in its two arguments. After gathering over processes (if
    ``gather_distributed``) and L2-normalising every row, with ``J_m`` the centering matrix:

    - uniformity ``U = MCE(target_scale I, p^T J_m z / m + ridge I)``,
    - alignment ``A = MCE(p^T J_m p / m + ridge I, z^T J_m z / m + ridge I)`` (target plays P,
      online plays Q),
    - loss ``U + gamma * A`` with ``MCE(P, Q) = tr(-P log Q)``.

    For two views the paper's objective is ``0.5 * (loss_fn(z1, p2) + loss_fn(z2, p1))``.

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
        gamma: Weight of the alignment term (finite, >= 0).
        target_scale: Scale of the identity target of the uniformity term (finite, > 0; the
            paper's and authors' ``lamda``, still accepted with a ``DeprecationWarning``).
        ridge: Ridge ``ridge * I`` added to every covariance (finite, > 0; the authors' ``mu``,
            still accepted with a ``DeprecationWarning``).
        taylor_order: Terms of the Taylor logarithm, or None for the exact logarithm.
        gather_distributed: If True, gather embeddings from all processes before the loss, so
            it is computed over the global batch (gradients stay correct); the global batch
            must have at least 2 rows, one row per process is enough. Without an initialised
            process group the local batch is used, as in Lightly's losses.

    Raises:
        ValueError: If a hyper-parameter is NaN, infinite or out of range, or gathering is
            unavailable.

    Examples:
        >>> import torch
        >>> from lightly_matrix.loss import MatrixSSLLoss
        >>> loss_fn = MatrixSSLLoss()
        >>> # z0, z1: online predictor outputs for the two views (they get the gradient);
        >>> # p0, p1: projections of the EMA teacher (no gradient), as in BYOL.
        >>> z0 = torch.randn(32, 128, requires_grad=True)
        >>> z1 = torch.randn(32, 128, requires_grad=True)
        >>> p0, p1 = torch.randn(32, 128), torch.randn(32, 128)
        >>> loss = 0.5 * (loss_fn(z0, p1) + loss_fn(z1, p0))
        >>> loss.backward()
    """

    #: Old argument names (the authors' letters) -> new names.
    renamed: ClassVar[dict[str, str]] = {"lamda": "target_scale", "mu": "ridge"}

    def __init__(
        self,
        gamma: float = 1.0,
        target_scale: float = 1.0,
        ridge: float = 1.0,
        taylor_order: int | None = 4,
        gather_distributed: bool = False,
        **deprecated: float,
    ) -> None:
        super().__init__()
        renamed = resolve_renamed(
            type(self).__name__,
            self.renamed,
            deprecated,
            {"target_scale": target_scale, "ridge": ridge},
            {"target_scale": 1.0, "ridge": 1.0},
        )
        target_scale, ridge = renamed["target_scale"], renamed["ridge"]
        gamma = check_number("gamma", gamma, low=0.0, hint="it weighs the alignment term.")
        target_scale = check_number(
            "target_scale", target_scale, low=0.0, low_open=True, hint="the paper's runs use 1.0."
        )
        ridge = check_number(
            "ridge",
            ridge,
            low=0.0,
            low_open=True,
            hint="the ridge * I keeps the logarithm defined (use 1.0).",
        )
        if taylor_order is not None:
            check_positive_int("taylor_order", taylor_order, hint="or None: the exact logarithm")
        check_gather_available(gather_distributed)
        self.gamma = gamma
        self.target_scale = target_scale
        self.ridge = ridge
        self.taylor_order = taylor_order
        self.gather_distributed = gather_distributed

    def forward(self, online: Tensor, target: Tensor) -> Tensor:
        """Loss of one pair.

        Args:
            online: ``z``, the online predictor output of shape (batch, dim); it receives the
                gradient and plays Q in the alignment term.
            target: ``p``, the teacher projection of shape (batch, dim), usually without
                gradient; it plays P in the alignment term.

        Returns:
            Scalar loss (float32, or float64 for float64 inputs).
        """
        name = type(self).__name__
        check_batch(name, online, target, min_rows=1 if self.gather_distributed else 2)
        with no_autocast(online):
            z, p = to_compute_dtype(online, target)
            z = gather_rows(z, self.gather_distributed)
            p = gather_rows(p, self.gather_distributed)
            check_global_batch(name, z, online.shape[0])
            z, p = F.normalize(z, dim=1), F.normalize(p, dim=1)
            uniformity = mce_uniformity(p, z, self.target_scale, self.ridge, self.taylor_order)
            alignment = mce_alignment(p, z, self.ridge, self.taylor_order)
            return uniformity + self.gamma * alignment
