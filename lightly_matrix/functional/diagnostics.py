"""Collapse diagnostics from the smaller Gram matrix: matrix entropy (what Matrix-SSL and M-MAE
[0, 1] maximise), effective rank [2] and covariance spectrum; they fall when embeddings collapse.

- [0] Zhang et al., Matrix Information Theory for Self-Supervised Learning, ICML 2024
- [1] Yang et al., Information Flow in Self-Supervised Learning, https://arxiv.org/abs/2309.17281
- [2] Roy and Vetterli, The effective rank: a measure of effective dimensionality, EUSIPCO 2007
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _gram_eigenvalues(x: Tensor) -> Tensor:
    gram = x @ x.mT if x.shape[0] <= x.shape[1] else x.mT @ x
    return torch.linalg.eigvalsh(gram).clamp(min=0.0)


def _entropy(weights: Tensor) -> Tensor:
    probs = weights / weights.sum().clamp(min=torch.finfo(weights.dtype).tiny)
    return -torch.special.xlogy(probs, probs).sum()


def _float64(x: Tensor) -> Tensor:
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(
            f"expected embeddings of shape (batch >= 2, dim), got {tuple(x.shape)}; "
            "flatten the features to 2-D and use at least two samples."
        )
    return x.detach().to(torch.float64)


@torch.no_grad()
def matrix_entropy(embeddings: Tensor) -> Tensor:
    """Von Neumann entropy ``-tr(rho log rho)`` of ``rho = F^T F / m``, ``F`` the row-normalised
    embeddings (m, d): a float64 scalar in nats, from 0 (all rows parallel) to ``log(min(m, d))``.

    Examples:
        >>> x = torch.eye(4)
        >>> round(float(matrix_entropy(x)), 4)  # log(4)
        1.3863
    """
    return _entropy(_gram_eigenvalues(F.normalize(_float64(embeddings), dim=1)))


@torch.no_grad()
def covariance_spectrum(embeddings: Tensor) -> Tensor:
    """The ``min(m, d)`` largest eigenvalues of the sample covariance ``X_c^T X_c / (m - 1)`` of
    embeddings (m, d) (``X_c`` centred), float64, descending; the others are 0.

    Examples:
        >>> x = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0]])
        >>> covariance_spectrum(x).tolist()  # variances 8/3 and 2/3 along the axes
        [2.6666666666666665, 0.6666666666666666]
    """
    x = _float64(embeddings)
    x = x - x.mean(dim=0, keepdim=True)
    return _gram_eigenvalues(x).flip(0) / (x.shape[0] - 1)


@torch.no_grad()
def effective_rank(embeddings: Tensor) -> Tensor:
    """Effective rank ``exp(H(sigma / sum sigma))``, ``sigma`` the singular values of the centred
    embeddings (m, d): a float64 scalar between 1 and ``min(m, d)``.

    Examples:
        >>> x = torch.cat([torch.eye(3), -torch.eye(3)])
        >>> round(float(effective_rank(x)), 4)
        3.0
    """
    # Singular values up to a factor sqrt(m - 1), which the entropy ignores; all zero: rank 1.
    return torch.exp(_entropy(covariance_spectrum(embeddings).sqrt()))
