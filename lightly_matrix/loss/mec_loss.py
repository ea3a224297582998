"""Maximum Entropy Coding loss: the Taylor-expanded coding length of two views [0]."""

from __future__ import annotations

from torch import Tensor

from lightly_matrix.functional._linalg import logdet_identity_plus_cross
from lightly_matrix.loss._common import BatchLoss, check_number, check_positive_int


class MECLoss(BatchLoss):
    """Maximum Entropy Coding loss of one (online, target) pair, as in the authors' code [0].

    With the rows of ``z`` (online) and ``p`` (target), m x d, gathered and L2-normalised and
    ``lamda = d / (m * eps_squared)``:

    ``loss = -1 / (m * lamda) * logdet(I + lamda * p^T z)``

    with ``logdet`` a Taylor series. The paper's ``-mu * logdet(...)`` is divided by
    ``mu * m * lamda`` as in the authors' code (first-order term: BYOL's negative cosine
    similarity). The series needs the spectrum of ``lamda * p^T z`` in the unit disc, so the
    authors' warm-up uses an ``eps_squared`` 8 times larger (``forward(..., eps_squared=...)``).

    - [0] Liu et al., Self-Supervised Learning via Maximum Entropy Coding, NeurIPS 2022,
      https://arxiv.org/abs/2210.11464

    Args:
        eps_squared: ``eps^2``, the squared decoding error bound (> 0); the authors' ``--eps`` 64.
        taylor_order: Terms of the Taylor series (authors: 4), or None for the exact logdet.
        gather_distributed: See :class:`~lightly_matrix.loss.BatchLoss`.

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
                "taylor_order", taylor_order, hint="or None: exact logdet; authors: 4"
            )
        self.taylor_order = taylor_order

    def forward(self, online: Tensor, target: Tensor, eps_squared: float | None = None) -> Tensor:
        """Loss of one pair.

        Args:
            online: ``z``, the online predictor output (batch, dim).
            target: ``p``, the teacher projection (batch, dim).
            eps_squared: This step's ``eps^2`` (e.g. during the warm-up); None: the attribute.
        """
        eps2 = self.eps_squared if eps_squared is None else _check_eps_squared(eps_squared)
        with self.global_batch(online, target) as (z, p):
            m, d = z.shape
            lamda = d / (m * eps2)
            return -logdet_identity_plus_cross(p, z, lamda, self.taylor_order) / (m * lamda)


def _check_eps_squared(value: object) -> float:
    hint = "the squared decoding error bound; the authors use 64."
    return check_number("eps_squared", value, low=0.0, low_open=True, hint=hint)
