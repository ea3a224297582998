"""Maximum Entropy Coding loss: the Taylor-expanded coding length of two views [0]."""

from __future__ import annotations

from torch import Tensor

from lightly_matrix.functional._linalg import logdet_identity_plus_cross
from lightly_matrix.loss._common import BatchLoss, check_number, check_positive_int


def mec_lamda(batch_size: int, dim: int, eps_squared: float) -> float:
    """MEC's ``lambda = d / (m * eps^2)`` for a (global) batch of ``m`` rows of dimension ``d``."""
    return dim / (batch_size * eps_squared)


def mec_mu(batch_size: int, dim: int) -> float:
    """MEC's ``mu = (m + d) / 2``, the factor of the coding length in [0]'s Eqn. 2."""
    return (batch_size + dim) / 2


class MECLoss(BatchLoss):
    """Maximum Entropy Coding loss of one (online, target) pair, as in the authors' code [0].

    After gathering and L2-normalising every row of the online output ``z`` and the target
    ``p`` (both m x d), with ``lamda = d / (m * eps_squared)`` (:func:`mec_lamda`):

    ``loss = -1 / (m * lamda) * logdet(I + lamda * p^T z)``

    where ``logdet`` is its Taylor series of order ``taylor_order``, or the exact ``log|det|``
    with ``taylor_order=None``. The paper's objective ``-mu * logdet(...)`` (``mu = (m + d) / 2``,
    :func:`mec_mu`) is divided by ``mu * m * lamda`` as in the authors' code, so the first-order
    term is BYOL's negative cosine similarity whatever ``lamda`` is.

    The series converges only where the spectrum of ``lamda * p^T z`` lies inside the unit disc
    (a collapsed batch has an eigenvalue near ``d / eps_squared``), so the authors start with
    ``eps_squared`` 8 times larger and bring it down over the 10 warm-up epochs: pass the current
    value as ``forward(..., eps_squared=...)``. The loss is symmetric in its two arguments.

    - [0] Liu et al., Self-Supervised Learning via Maximum Entropy Coding, NeurIPS 2022,
      https://arxiv.org/abs/2210.11464

    Args:
        eps_squared: ``eps^2``, the squared upper bound of the expected decoding error (finite,
            > 0); the authors' default 64 (``--eps`` in their ``main_pretrain.py``).
        taylor_order: Terms of the Taylor series (the authors use 4), or None for the exact
            log-determinant.
        gather_distributed: See :class:`~lightly_matrix.loss._common.BatchLoss`.

    Examples:
        >>> import torch
        >>> from lightly_matrix.loss import MECLoss
        >>> loss_fn = MECLoss()
        >>> online = torch.randn(32, 128, requires_grad=True)  # student predictor output
        >>> target = torch.randn(32, 128)  # EMA teacher projection
        >>> loss_fn(online, target).backward()
        >>> # During the authors' warm-up, eps^2 starts 8 times larger:
        >>> warm = loss_fn(online, target, eps_squared=8 * 64.0)
    """

    def __init__(
        self,
        eps_squared: float = 64.0,
        taylor_order: int | None = 4,
        gather_distributed: bool = False,
    ) -> None:
        super().__init__(gather_distributed)
        self.eps_squared = _check_eps_squared(eps_squared)
        if taylor_order is not None:
            check_positive_int(
                "taylor_order", taylor_order, hint="or None (exact log-determinant); authors: 4"
            )
        self.taylor_order = taylor_order

    def forward(self, online: Tensor, target: Tensor, eps_squared: float | None = None) -> Tensor:
        """Loss of one pair.

        Args:
            online: ``z``, the online predictor output of shape (batch, dim).
            target: ``p``, the teacher projection of shape (batch, dim).
            eps_squared: This step's ``eps^2`` (e.g. during the warm-up); None: the attribute.
        """
        eps2 = self.eps_squared if eps_squared is None else _check_eps_squared(eps_squared)
        with self.global_batch(online, target) as (z, p):
            m, d = z.shape
            lamda = mec_lamda(m, d, eps2)
            return -logdet_identity_plus_cross(p, z, lamda, self.taylor_order) / (m * lamda)


def _check_eps_squared(value: object) -> float:
    hint = "the squared decoding error bound; the authors use 64."
    return check_number("eps_squared", value, low=0.0, low_open=True, hint=hint)
