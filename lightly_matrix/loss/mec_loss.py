"""Maximum Entropy Coding loss: the Taylor-expanded coding length of two views [0]."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from lightly_matrix.functional._linalg import logdet_identity_plus_cross
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


def mec_lamda(batch_size: int, dim: int, eps_squared: float) -> float:
    """MEC's ``lambda = d / (m * eps^2)`` for a (global) batch of ``m`` rows of dimension ``d``."""
    return dim / (batch_size * eps_squared)


def mec_mu(batch_size: int, dim: int) -> float:
    """MEC's ``mu = (m + d) / 2``, the factor of the coding length in [0]'s Eqn. 2."""
    return (batch_size + dim) / 2


class MECLoss(nn.Module):
    """Maximum Entropy Coding loss of one (online, target) pair, as in the authors' code [0].

    After gathering over processes (if ``gather_distributed``) and L2-normalising every row of
    the online output ``z`` and the target ``p`` (both m x d), with
    ``lamda = d / (m * eps_squared)`` (:func:`mec_lamda`):

    ``loss = -1 / (m * lamda) * logdet(I + lamda * p^T z)``

    where ``logdet`` is its Taylor series ``sum_k (-1)^(k+1) tr((lamda p^T z)^k) / k`` of order
    ``taylor_order`` (4 in the authors' code), or the exact ``log|det|`` with
    ``taylor_order=None``. The paper's objective is ``-mu * logdet(...)`` with
    ``mu = (m + d) / 2`` (:func:`mec_mu`); the authors train on it divided by ``mu * m * lamda``,
    as here, so that the first-order term is BYOL's negative cosine similarity
    ``-mean_i cos(z_i, p_i)`` whatever ``lamda`` is (the higher orders spread the batch). Multiply
    the returned value by ``-mu * lamda`` for their logged per-sample coding length.

    The series converges only where the spectrum of ``lamda * p^T z`` lies inside the unit disc;
    a collapsed batch has an eigenvalue near ``lamda * m = d / eps_squared``. The authors
    therefore start training with ``eps_squared`` 8 times larger and bring it down linearly over
    the 10 warm-up epochs: pass the current value as ``forward(..., eps_squared=...)``
    (:class:`~lightly_matrix.methods.MEC` does).

    The loss is symmetric in its two arguments (``tr((p^T z)^k) = tr((z^T p)^k)``); for two views
    the authors' objective is ``0.5 * (loss_fn(z1, p2) + loss_fn(z2, p1))`` with ``p`` from the EMA
    teacher. Every trace is taken on the smaller of the m x m and d x d sides; the matrix math runs
    in float32 (float64 for float64 inputs) outside autocast. Non-finite inputs give a non-finite
    loss, as in the other Taylor losses of this package (the pretraining loop stops on it).

    - [0] Liu et al., Self-Supervised Learning via Maximum Entropy Coding, NeurIPS 2022,
      https://arxiv.org/abs/2210.11464

    Attributes:
        eps_squared: ``eps^2``, the squared upper bound of the expected decoding error (finite,
            > 0); the authors' default 64 (``--eps`` in their ``main_pretrain.py``).
        taylor_order: Terms of the Taylor series (the authors use 4), or None for the exact
            log-determinant.
        gather_distributed: If True, gather embeddings from all processes first, so ``m`` is the
            global batch (gradients stay correct); one row per process is enough. Without an
            initialised process group the local batch is used, as in Lightly's losses.

    Raises:
        ValueError: If ``eps_squared`` is NaN, infinite or not positive, ``taylor_order`` is not a
            positive int or None, or gathering is unavailable.

    Examples:
        >>> import torch
        >>> from lightly_matrix.loss import MECLoss
        >>> loss_fn = MECLoss()
        >>> # z0, z1: online predictor outputs for the two views (they get the gradient);
        >>> # p0, p1: projections of the EMA teacher (no gradient), as in BYOL.
        >>> z0 = torch.randn(32, 128, requires_grad=True)
        >>> z1 = torch.randn(32, 128, requires_grad=True)
        >>> p0, p1 = torch.randn(32, 128), torch.randn(32, 128)
        >>> loss = 0.5 * (loss_fn(z0, p1) + loss_fn(z1, p0))
        >>> loss.backward()
        >>> # During the authors' warm-up: eps^2 starts 8 times larger.
        >>> warm = loss_fn(z0, p1, eps_squared=8 * 64.0)
    """

    def __init__(
        self,
        eps_squared: float = 64.0,
        taylor_order: int | None = 4,
        gather_distributed: bool = False,
    ) -> None:
        super().__init__()
        self.eps_squared = _check_eps_squared(eps_squared)
        if taylor_order is not None:
            check_positive_int(
                "taylor_order",
                taylor_order,
                hint="or None (exact log-determinant); the authors use 4",
            )
        check_gather_available(gather_distributed)
        self.taylor_order = taylor_order
        self.gather_distributed = gather_distributed

    def forward(self, online: Tensor, target: Tensor, eps_squared: float | None = None) -> Tensor:
        """Loss of one pair.

        Args:
            online: ``z``, the online predictor output of shape (batch, dim).
            target: ``p``, the teacher projection of shape (batch, dim), usually without
                gradient.
            eps_squared: This step's ``eps^2`` (e.g. during the warm-up); None: the attribute.

        Returns:
            Scalar loss (float32, or float64 for float64 inputs).
        """
        eps2 = self.eps_squared if eps_squared is None else _check_eps_squared(eps_squared)
        name = type(self).__name__
        check_batch(name, online, target, min_rows=1 if self.gather_distributed else 2)
        with no_autocast(online):
            z, p = to_compute_dtype(online, target)
            z = gather_rows(z, self.gather_distributed)
            p = gather_rows(p, self.gather_distributed)
            check_global_batch(name, z, online.shape[0])
            z, p = F.normalize(z, dim=1), F.normalize(p, dim=1)
            m, d = z.shape
            lamda = mec_lamda(m, d, eps2)
            logdet = logdet_identity_plus_cross(p, z, lamda, self.taylor_order)
            return -logdet / (m * lamda)


def _check_eps_squared(value: object) -> float:
    return check_number(
        "eps_squared",
        value,
        low=0.0,
        low_open=True,
        hint="the squared decoding error bound; the authors use 64.",
    )
