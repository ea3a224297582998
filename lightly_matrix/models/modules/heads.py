"""Projection and prediction heads of Matrix-SSL [0] and CorInfoMax [1], as Lightly heads.

- [0] Zhang et al., Matrix Information Theory for Self-Supervised Learning, ICML 2024,
  https://arxiv.org/abs/2305.17326
- [1] Ozsoy et al., Self-Supervised Learning with an Information Maximization Criterion,
  NeurIPS 2022, https://arxiv.org/abs/2209.07999
"""

from __future__ import annotations

from lightly.models.modules.heads import BYOLPredictionHead, ProjectionHead
from torch import nn

from lightly_matrix.utils.checks import check_positive_int


def _check_dims(**dims: int) -> None:
    for name, value in dims.items():
        check_positive_int(name, value)


class MatrixSSLProjectionHead(ProjectionHead):
    """Projection head of Matrix-SSL [0] (three layers, the last followed by a non-affine BN).

    ``Linear(no bias)-BN-ReLU, Linear(no bias)-BN-ReLU, Linear, BN(affine=False)``, as in the
    authors' code, which also freezes the last Linear's bias (the BN after it cancels it).

    Examples:
        >>> import torch
        >>> head = MatrixSSLProjectionHead(input_dim=512, hidden_dim=256, output_dim=128)
        >>> head(torch.randn(4, 512)).shape
        torch.Size([4, 128])
    """

    def __init__(
        self, input_dim: int = 2048, hidden_dim: int = 2048, output_dim: int = 2048
    ) -> None:
        _check_dims(input_dim=input_dim, hidden_dim=hidden_dim, output_dim=output_dim)
        super().__init__(
            [
                (input_dim, hidden_dim, nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True), False),
                (hidden_dim, hidden_dim, nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True), False),
                (hidden_dim, output_dim, nn.BatchNorm1d(output_dim, affine=False), None, True),
            ]
        )
        self.layers[-2].bias.requires_grad_(False)


class MatrixSSLPredictionHead(BYOLPredictionHead):
    """Prediction head of Matrix-SSL [0]: BYOL's ``Linear(no bias)-BN-ReLU, Linear``, 2048-512-2048.

    Examples:
        >>> import torch
        >>> head = MatrixSSLPredictionHead(input_dim=128, hidden_dim=32, output_dim=128)
        >>> head(torch.randn(4, 128)).shape
        torch.Size([4, 128])
    """

    def __init__(
        self, input_dim: int = 2048, hidden_dim: int = 512, output_dim: int = 2048
    ) -> None:
        _check_dims(input_dim=input_dim, hidden_dim=hidden_dim, output_dim=output_dim)
        super().__init__(input_dim, hidden_dim, output_dim)


class CorInfoMaxProjectionHead(ProjectionHead):
    """Projection head of CorInfoMax [1]: hidden layers with ReLU, last Linear without bias.

    The defaults are the CIFAR-10 ResNet-18 setting; ImageNet-1k's adds BN (``batch_norm=True``)
    and keeps the hidden Linear biases, as the authors' ``imagenet1k`` model.

    Args:
        input_dim: Backbone feature size.
        hidden_dim: Width of the hidden layers.
        output_dim: Embedding size (the ``dim`` of :class:`~lightly_matrix.loss.CorInfoMaxLoss`).
        num_layers: Number of Linear layers (>= 1).
        batch_norm: Put BatchNorm1d after each hidden Linear.

    Examples:
        >>> import torch
        >>> head = CorInfoMaxProjectionHead(input_dim=512, hidden_dim=256, output_dim=64)
        >>> head(torch.randn(4, 512)).shape
        torch.Size([4, 64])
    """

    def __init__(
        self,
        input_dim: int = 512,
        hidden_dim: int = 2048,
        output_dim: int = 64,
        num_layers: int = 3,
        batch_norm: bool = False,
    ) -> None:
        _check_dims(
            input_dim=input_dim, hidden_dim=hidden_dim, output_dim=output_dim, num_layers=num_layers
        )
        blocks: list = []
        in_dim = input_dim
        for _ in range(num_layers - 1):
            bn = nn.BatchNorm1d(hidden_dim) if batch_norm else None
            blocks.append((in_dim, hidden_dim, bn, nn.ReLU(inplace=True), True))
            in_dim = hidden_dim
        blocks.append((in_dim, output_dim, None, None, False))
        super().__init__(blocks)
