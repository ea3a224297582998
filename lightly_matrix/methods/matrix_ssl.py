"""Matrix-SSL [0]: BYOL-style online/EMA-teacher networks trained with matrix cross-entropy.

- [0] Zhang et al., Matrix Information Theory for Self-Supervised Learning, ICML 2024,
  https://arxiv.org/abs/2305.17326
"""

from __future__ import annotations

from typing import Unpack

from lightly_matrix.loss import MatrixSSLLoss
from lightly_matrix.methods.ema_teacher import EMATeacherModule, TeacherArgs


class MatrixSSL(EMATeacherModule):
    """Matrix-SSL pretraining module [0].

    Defaults are the authors' ImageNet ResNet-50 run as their ``pretrain.sh`` runs it
    (``--mce_lambd 0.5 --mce_mu 0.5 --gamma 1``, Taylor order 4). Arguments: :class:`TeacherArgs`.

    Args:
        gamma: Weight of the alignment term.
        target_scale: Scale of the identity target in the uniformity term (the authors' lamda).
        ridge: Ridge added to every matrix inside the logarithm (the authors' mu).
        taylor_order: Order of the Taylor matrix logarithm (``None``: exact).
    """

    method = "matrix_ssl"

    def __init__(
        self,
        *,
        gamma: float = 1.0,
        target_scale: float = 0.5,
        ridge: float = 0.5,
        taylor_order: int | None = 4,
        **shared: Unpack[TeacherArgs],
    ) -> None:
        super().__init__()
        self._init_teacher()
        self.criterion = MatrixSSLLoss(
            gamma=gamma,
            target_scale=target_scale,
            ridge=ridge,
            taylor_order=taylor_order,
            gather_distributed=self.hparams["gather_distributed"],
        )
