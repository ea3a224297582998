"""M-MAE's matrix-entropy (total coding rate) regulariser [0]."""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from lightly_matrix.functional._linalg import logdet_identity_plus_gram
from lightly_matrix.loss._common import (
    check_batch,
    check_gather_available,
    check_global_batch,
    check_number,
    gather_rows,
    no_autocast,
    to_compute_dtype,
)
from lightly_matrix.utils.deprecation import resolve_renamed


class MatrixEntropyLoss(nn.Module):
    """Negative total coding rate ``-logdet(I_d + gram_scale / d * F^T F)``, M-MAE's regulariser
    [0].

    ``F`` holds the (gathered, then L2-normalised, optionally centred) features, one row per
    sample. The divisor is the feature dimension ``d``, not the batch size, and there is no 1/2
    factor, as in the authors' code. By Sylvester's identity the log-determinant is computed on
    the ``min(m, d)`` side. M-MAE adds it to the MAE loss as ``loss_mae + lamb * reg``; pass
    ``weight=lamb`` to get ``lamb * reg`` directly (the authors' ViT-L run: ``lamb = 0.01``,
    ``gram_scale = 3``). Its second-order expansion is U-MAE's square term
    (:class:`~lightly_matrix.loss.UMAELoss`), which is why M-MAE subsumes U-MAE.

    The feature is the encoder's CLS token after the ViT's final LayerNorm. With Lightly's
    :class:`~lightly.models.modules.MaskedVisionTransformerTIMM` (Lightly's MAE example) that is
    ``x_encoded[:, 0]`` for ``x_encoded = backbone.encode(images, idx_keep=idx_keep)``: ``encode``
    ends with ``vit.norm`` and keeps the class token at index 0. This is what
    :class:`~lightly_matrix.methods.mmae.MMAE` uses; the authors' code applies one more
    LayerNorm on top, which we leave out.

    ``gram_scale`` (the authors' ``mu``) defaults to 1.0, their argparse default; their only
    published run (ViT-L, ``pretrain.sh``) asks for 3, and the ImageNet presets of this package
    use 3. Pass ``gram_scale=3.0`` to follow that run.

    - [0] Yang et al., Information Flow in Self-Supervised Learning,
      https://arxiv.org/abs/2309.17281

    Attributes:
        gram_scale: Scale of the Gram term (finite, > 0); the authors' ``mu``, still accepted
            with a ``DeprecationWarning``.
        centering: Subtract the batch mean of the normalised features first.
        gather_distributed: Gather features from all processes first (gradients stay correct);
            the global batch must have at least 2 rows, one row per process is enough.
            Without an initialised process group the local batch is used, as in Lightly's
            losses.
        weight: Factor applied to the returned value (finite, >= 0); M-MAE's ``lamb``.

    Raises:
        ValueError: If ``gram_scale`` or ``weight`` is NaN, infinite or out of range, or
            gathering is unavailable.

    Examples:
        >>> import torch
        >>> from lightly_matrix.loss import MatrixEntropyLoss
        >>> reg_fn = MatrixEntropyLoss(gram_scale=3.0, weight=0.01)  # M-MAE's ViT-L run
        >>> cls_features = torch.randn(16, 192, requires_grad=True)  # encoder CLS tokens
        >>> reg = reg_fn(cls_features)  # 0.01 * -logdet(I + 3 / 192 * F^T F)
        >>> reg.backward()

        In Lightly's MAE example (``examples/pytorch/mae.py``), take the CLS token of the
        encoder output and add the weighted regulariser to the pixel loss:

        >>> import timm
        >>> from lightly.models import utils
        >>> from lightly.models.modules import MaskedVisionTransformerTIMM
        >>> vit = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8)
        >>> backbone = MaskedVisionTransformerTIMM(vit=vit)
        >>> images = torch.randn(8, 3, 32, 32)
        >>> idx_keep, idx_mask = utils.random_token_mask(
        ...     size=(8, backbone.sequence_length), mask_ratio=0.75
        ... )
        >>> x_encoded = backbone.encode(images=images, idx_keep=idx_keep)
        >>> # x_pred, target = decoder and patchify as in the example, then:
        >>> # loss = criterion(x_pred, target) + reg_fn(x_encoded[:, 0])
        >>> reg = reg_fn(x_encoded[:, 0])
        >>> reg.backward()
    """

    #: The authors' argument name -> ours.
    renamed: ClassVar[dict[str, str]] = {"mu": "gram_scale"}

    def __init__(
        self,
        gram_scale: float = 1.0,
        centering: bool = False,
        gather_distributed: bool = False,
        weight: float = 1.0,
        **deprecated: float,
    ) -> None:
        super().__init__()
        gram_scale = resolve_renamed(
            type(self).__name__,
            self.renamed,
            deprecated,
            {"gram_scale": gram_scale},
            {"gram_scale": 1.0},
        )["gram_scale"]
        gram_scale = check_number(
            "gram_scale",
            gram_scale,
            low=0.0,
            low_open=True,
            hint="the authors use 1 (default) or 3 (their ViT-L run).",
        )
        weight = check_number("weight", weight, low=0.0, hint="M-MAE's lamb; the authors use 0.01.")
        check_gather_available(gather_distributed)
        self.gram_scale = gram_scale
        self.centering = centering
        self.gather_distributed = gather_distributed
        self.weight = weight

    def forward(self, features: Tensor) -> Tensor:
        """Regulariser value of one batch, times ``weight``.

        Args:
            features: Features of shape (batch, dim), e.g. the encoder's CLS token
                ``x_encoded[:, 0]``.

        Returns:
            Scalar tensor (float32, or float64 for float64 inputs).
        """
        name = type(self).__name__
        check_batch(name, features, min_rows=1 if self.gather_distributed else 2)
        with no_autocast(features):
            (f,) = to_compute_dtype(features)
            f = gather_rows(f, self.gather_distributed)
            check_global_batch(name, f, features.shape[0])
            f = F.normalize(f, dim=1)
            if self.centering:
                f = f - f.mean(dim=0, keepdim=True)
            return -self.weight * logdet_identity_plus_gram(f, self.gram_scale / f.shape[1])
