"""M-MAE's matrix-entropy (total coding rate) regulariser [0]."""

from __future__ import annotations

from torch import Tensor

from lightly_matrix.functional._linalg import logdet_identity_plus_gram
from lightly_matrix.loss._common import BatchLoss, check_number


class MatrixEntropyLoss(BatchLoss):
    """Negative coding rate ``-logdet(I_d + gram_scale / d * F^T F)``: M-MAE's regulariser [0].

    ``F``: the gathered, L2-normalised (optionally centred) features; divisor ``d`` and no 1/2
    factor, as in the authors' code, who add it to the MAE loss on the normalised CLS token. Its
    second-order term is U-MAE's (:class:`~lightly_matrix.loss.UMAELoss`).

    - [0] Yang et al., Information Flow in Self-Supervised Learning,
      https://arxiv.org/abs/2309.17281

    Args:
        gram_scale: Scale of the Gram term (finite, > 0).
        centering: Subtract the batch mean of the normalised features first.
        gather_distributed: See :class:`~lightly_matrix.loss.BatchLoss`.
        weight: Factor applied to the returned value (finite, >= 0); M-MAE's ``lamb``.
        mu: The authors' name of ``gram_scale``.

    Examples:
        >>> import torch
        >>> from lightly_matrix.loss import MatrixEntropyLoss
        >>> reg_fn = MatrixEntropyLoss(gram_scale=3.0, weight=0.01)  # M-MAE's ViT-L run
        >>> # x_encoded = backbone.encode(images, idx_keep=idx_keep) in Lightly's MAE examples
        >>> x_encoded = torch.randn(8, 17, 192, requires_grad=True)
        >>> reg_fn(x_encoded[:, 0]).backward()  # added to criterion(x_pred, target)
    """

    def __init__(
        self,
        gram_scale: float = 1.0,
        centering: bool = False,
        gather_distributed: bool = False,
        weight: float = 1.0,
        *,
        mu: float | None = None,
    ) -> None:
        super().__init__(gather_distributed)
        gram_scale = self.resolve_alias("gram_scale", gram_scale, "mu", mu)
        hint = "the authors use 1 (default) or 3 (their ViT-L run)."
        self.gram_scale = check_number("gram_scale", gram_scale, low=0.0, low_open=True, hint=hint)
        self.centering = centering
        self.weight = check_number("weight", weight, low=0.0, hint="M-MAE's lamb; authors: 0.01.")

    def forward(self, features: Tensor) -> Tensor:
        """Regulariser value of one batch of features (batch, dim), times ``weight``."""
        with self.global_batch(features) as (f,):
            if self.centering:
                f = f - f.mean(dim=0, keepdim=True)
            return -self.weight * logdet_identity_plus_gram(f, self.gram_scale / f.shape[1])
