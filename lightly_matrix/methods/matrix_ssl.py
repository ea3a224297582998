"""Matrix-SSL (Zhang et al., ICML 2024): BYOL-style online/EMA-teacher networks trained with matrix
cross-entropy (uniformity + gamma * alignment) between predictor outputs and teacher projections."""

from __future__ import annotations

from typing import ClassVar, Unpack

from torch import Tensor

from lightly_matrix.loss import MatrixSSLLoss
from lightly_matrix.methods.base import SharedArgs
from lightly_matrix.methods.ema_teacher import EMATeacherModule
from lightly_matrix.models.modules import MatrixSSLPredictionHead, MatrixSSLProjectionHead


class MatrixSSL(EMATeacherModule):
    """Matrix-SSL pretraining module.

    Defaults are the authors' ImageNet ResNet-50 run (``main_pretrain.py`` of
    yifanzhang-pro/Matrix-SSL with the README's ``--mce_mu 1 --mce_lambd 1 --gamma 1``): ResNet-50
    with ``zero_init_residual``, projector 2048-2048-2048 (last BN without affine), predictor
    2048-512-2048, SGD (momentum 0.9) with lr 0.5 per 256 images and weight decay 1e-5 on every
    parameter, per-step linear warm-up from 0 over 10 epochs then cosine to 0, teacher momentum
    0.996 -> 1 on a per-step cosine applied after each optimizer step, Taylor order 4.

    Shared arguments (backbone, batch, optimiser, schedule): see
    :class:`~lightly_matrix.methods.base.SharedArgs`; ``recipe`` holds this method's defaults.

    Args:
        hidden_dim: Projector hidden width.
        output_dim: Projector (and predictor) output width d.
        pred_hidden_dim: Predictor hidden width.
        gamma: Weight of the alignment term.
        target_scale: Scale of the identity target in the uniformity term (the authors'
            ``lamda``; the old name still works, with a ``DeprecationWarning``).
        ridge: Ridge added to every matrix inside the logarithm (the authors' ``mu``; likewise).
        taylor_order: Order of the Taylor matrix logarithm (``None``: exact).
        momentum_start: Teacher EMA momentum at the first step.
        momentum_end: Teacher EMA momentum at the last step.
    """

    method = "matrix_ssl"
    default_transform = "mocov3"
    renamed: ClassVar[dict[str, str]] = {"lamda": "target_scale", "mu": "ridge"}

    def __init__(
        self,
        *,
        hidden_dim: int = 2048,
        output_dim: int = 2048,
        pred_hidden_dim: int = 512,
        gamma: float = 1.0,
        target_scale: float = 1.0,
        ridge: float = 1.0,
        taylor_order: int | None = 4,
        momentum_start: float = 0.996,
        momentum_end: float = 1.0,
        **shared: Unpack[SharedArgs],
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        feature_dim = self._init_common()
        hp = self.hparams
        self.projection_head = MatrixSSLProjectionHead(
            feature_dim, hp["hidden_dim"], hp["output_dim"]
        )
        self.prediction_head = MatrixSSLPredictionHead(
            hp["output_dim"], hp["pred_hidden_dim"], hp["output_dim"]
        )

        # The teacher is an exponential moving average of backbone + projector.
        self._init_teacher()

        self.criterion = MatrixSSLLoss(
            gamma=hp["gamma"],
            target_scale=hp["target_scale"],
            ridge=hp["ridge"],
            taylor_order=hp["taylor_order"],
            gather_distributed=hp["gather_distributed"],
        )

    def pair_loss(self, online: Tensor, target: Tensor) -> Tensor:
        """Matrix cross-entropy of one (online prediction, teacher projection) pair."""
        return self.criterion(online, target)
