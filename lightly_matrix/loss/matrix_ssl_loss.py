"""Matrix-SSL loss: matrix uniformity plus matrix alignment [0]."""

from __future__ import annotations

from torch import Tensor

from lightly_matrix.functional.matrix_cross_entropy import mce_alignment, mce_uniformity
from lightly_matrix.loss._common import BatchLoss, check_number, check_positive_int


class MatrixSSLLoss(BatchLoss):
    """Matrix-SSL loss of one (online, target) pair, as proposed in [0].

    ``loss_fn(z, p)``: ``z`` is the ONLINE predictor output, ``p`` the TARGET (EMA teacher
    projection); swapped roles warn once. With rows gathered and L2-normalised, ``J_m`` centring:

    - uniformity ``U = MCE(target_scale I, p^T J_m z / m + ridge I)``,
    - alignment ``A = MCE(p^T J_m p / m + ridge I, z^T J_m z / m + ridge I)``,
    - loss ``U + gamma * A`` with ``MCE(P, Q) = tr(-P log Q)``.

    ``log`` is the authors' Taylor series around I; the paper's ``+ tr(Q)`` is omitted as there.

    - [0] Zhang et al., Matrix Information Theory for Self-Supervised Learning, ICML 2024,
      https://arxiv.org/abs/2305.17326

    Args:
        gamma: Weight of the alignment term (finite, >= 0).
        target_scale: Scale of the identity target of the uniformity term (finite, > 0).
        ridge: Ridge ``ridge * I`` added to every covariance (finite, > 0).
        taylor_order: Terms of the Taylor logarithm, or None for the exact logarithm.
        gather_distributed: See :class:`~lightly_matrix.loss.BatchLoss`.
        lamda: The paper's and authors' name of ``target_scale``.
        mu: The authors' name of ``ridge``.

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

    def __init__(
        self,
        gamma: float = 1.0,
        target_scale: float = 1.0,
        ridge: float = 1.0,
        taylor_order: int | None = 4,
        gather_distributed: bool = False,
        *,
        lamda: float | None = None,
        mu: float | None = None,
    ) -> None:
        super().__init__(gather_distributed)
        target_scale = self.resolve_alias("target_scale", target_scale, "lamda", lamda)
        ridge = self.resolve_alias("ridge", ridge, "mu", mu)
        self.gamma = check_number("gamma", gamma, low=0.0, hint="it weighs the alignment term.")
        self.target_scale = check_number(
            "target_scale", target_scale, low=0.0, low_open=True, hint="the paper's runs use 1.0."
        )
        hint = "it keeps the logarithm defined (use 1.0)."
        self.ridge = check_number("ridge", ridge, low=0.0, low_open=True, hint=hint)
        if taylor_order is not None:
            check_positive_int("taylor_order", taylor_order, hint="or None: the exact logarithm")
        self.taylor_order = taylor_order

    def forward(self, online: Tensor, target: Tensor) -> Tensor:
        """Loss of one pair.

        Args:
            online: ``z``, the online predictor output (batch, dim); Q of the alignment term.
            target: ``p``, the teacher projection (batch, dim); P of the alignment term.

        Raises:
            ValueError: Inputs on the meta device, besides those of
                :meth:`~lightly_matrix.loss.BatchLoss.global_batch`.
        """
        with self.global_batch(online, target) as (z, p):
            if z.is_meta or p.is_meta:
                raise ValueError(
                    "MatrixSSLLoss cannot evaluate meta tensors (they hold no data); create or "
                    "move the inputs to cpu or cuda first."
                )
            if target.requires_grad and not online.requires_grad:
                self.warn_once(
                    "swapped",
                    "the first argument has no gradient but the second has one; the call is "
                    "loss_fn(online, target): pass the online (student) prediction first and the "
                    "teacher's projection second (Lightly's byol.py passes them swapped).",
                )
            uniformity = mce_uniformity(p, z, self.target_scale, self.ridge, self.taylor_order)
            return uniformity + self.gamma * mce_alignment(p, z, self.ridge, self.taylor_order)
