"""Straightforward reference implementations of the authors' formulas, for the tests.

Dense d x d matrices, the centering matrix J_m built explicitly, float64, no shortcuts: these are
the formulas of the authors' code written the obvious way, independent of the package. The
repositories (the same as in :mod:`lightly_matrix.presets`): yifanzhang-pro/Matrix-SSL
(``mec/builder.py``), xinliu20/MEC, yifanzhang-pro/M-MAE (``loss_func.py``) and
serdarozsoy/corinfomax-ssl.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def taylor_log(Q: Tensor, order: int) -> Tensor:
    A = Q - torch.eye(Q.shape[0], dtype=Q.dtype)
    out = torch.zeros_like(Q)
    for k in range(1, order + 1):
        out = out + (-1) ** (k + 1) / k * torch.linalg.matrix_power(A, k)
    return out


def series_log_spd(Q: Tensor, terms: int = 400) -> Tensor:
    """log of an SPD matrix by ``log(c) I - sum_k (I - Q / c)^k / k``: differentiable, no eigh."""
    eye = torch.eye(Q.shape[0], dtype=Q.dtype)
    c = 1.01 * torch.linalg.matrix_norm(Q.detach(), ord="fro")
    X = eye - Q / c
    out = torch.log(c) * eye
    power = eye
    for k in range(1, terms + 1):
        power = power @ X
        out = out - power / k
    return out


def mce_reference(
    p: Tensor, z: Tensor, lamda: float, mu: float, order: int | None, correlation: bool
) -> Tensor:
    """The authors' ``mce_loss_func(p, z, correlation)`` (without gather), dense."""
    p, z = F.normalize(p, dim=1), F.normalize(z, dim=1)
    m, d = z.shape
    J = torch.eye(m, dtype=z.dtype) - torch.ones(m, m, dtype=z.dtype) / m
    eye = torch.eye(d, dtype=z.dtype)
    if correlation:
        P = lamda * eye
        Q = (p.T @ J @ z) / m + mu * eye
    else:
        P = (p.T @ J @ p) / m + mu * eye
        Q = (z.T @ J @ z) / m + mu * eye
    if order is None:
        if correlation:  # tr(log Q) = log det Q for the non-symmetric cross-covariance
            return -lamda * torch.logdet(Q)
        return torch.trace(-P @ series_log_spd(Q))
    return torch.trace(-P @ taylor_log(Q, order))


def matrix_ssl_reference(
    online: Tensor, target: Tensor, gamma: float, lamda: float, mu: float, order: int | None
) -> Tensor:
    return mce_reference(target, online, lamda, mu, order, True) + gamma * mce_reference(
        target, online, lamda, mu, order, False
    )


class CorInfoMaxReference:
    """The CorInfoMax covariance loss with its state, step by step, dense and float64."""

    def __init__(self, dim: int, alpha: float, la_R: float, la_mu: float, R_ini: float, eps: float):
        self.dim, self.alpha, self.la_R, self.la_mu, self.eps = dim, alpha, la_R, la_mu, eps
        self.mu = [torch.zeros(dim, dtype=torch.float64) for _ in range(2)]
        self.R = [R_ini * torch.eye(dim, dtype=torch.float64) for _ in range(2)]

    def step(self, z1: Tensor, z2: Tensor, cov_weight: float = 1.0, update: bool = True) -> Tensor:
        z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
        N, D = z1.shape
        logdets, new_mu, new_R = [], [], []
        for b, z in enumerate((z1, z2)):
            mu = self.la_mu * self.mu[b] + (1 - self.la_mu) * z.mean(0)
            zc = z - mu
            R = self.la_R * self.R[b] + (1 - self.la_R) * (zc.T @ zc) / N
            logdets.append(torch.logdet(R + self.eps * torch.eye(D, dtype=torch.float64)))
            new_mu.append(mu.detach())
            new_R.append(R.detach())
        cov_loss = -(logdets[0] + logdets[1]) / D
        invariance = ((z1 - z2) ** 2).sum() / (N * D)
        if update:
            self.mu, self.R = new_mu, new_R
        return self.alpha * invariance + cov_weight * cov_loss


def tcr_reference(features: Tensor, mu: float, centering: bool) -> Tensor:
    f = F.normalize(features, dim=1)
    if centering:
        f = f - f.mean(0, keepdim=True)
    d = f.shape[1]
    return -torch.logdet(torch.eye(d, dtype=f.dtype) + (mu / d) * f.T @ f)


def umae_reference(features: Tensor) -> Tensor:
    f = F.normalize(features, dim=1)
    sim = f @ f.T
    m = f.shape[0]
    return sum(sim[i, j] ** 2 for i in range(m) for j in range(m)) / (m * m)  # type: ignore[return-value]


def mec_reference(online: Tensor, target: Tensor, eps_squared: float, order: int | None) -> Tensor:
    """MEC's training loss ``-1/(m lamda) tr log(I_d + lamda p^T z)``, dense d x d, float64."""
    p, z = F.normalize(target, dim=1), F.normalize(online, dim=1)
    m, d = z.shape
    lamda = d / (m * eps_squared)
    Q = torch.eye(d, dtype=z.dtype) + lamda * p.T @ z
    log_det = torch.logdet(Q) if order is None else torch.trace(taylor_log(Q, order))
    return -log_det / (m * lamda)
