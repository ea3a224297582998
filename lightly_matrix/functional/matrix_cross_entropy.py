"""Matrix cross-entropy ``MCE(P, Q) = tr(-P log Q)`` (Matrix-SSL [0]), dense and on the Gram side:
every Matrix-SSL matrix is ``(rank <= m) + mu * I``, so each trace is taken exactly from the
smaller of the m x m and d x d matrices.

- [0] Zhang et al., Matrix Information Theory for Self-Supervised Learning, ICML 2024,
  https://arxiv.org/abs/2305.17326
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lightly_matrix.functional._linalg import (
    _eye_like,
    log_series,
    logdet_identity_plus_cross,
    matrix_log,
    matrix_log_taylor,
    matrix_powers,
    shifted_traces,
    symmetric_matrix_function,
    trace_powers,
)


def matrix_cross_entropy(P: Tensor, Q: Tensor, taylor_order: int | None = 4) -> Tensor:
    """Dense matrix cross-entropy ``tr(-P log Q)`` of two d x d matrices.

    Args:
        P: Matrix of shape (d, d).
        Q: Matrix of shape (d, d); symmetric positive definite when ``taylor_order`` is None.
        taylor_order: Terms of the Taylor logarithm around I, or None for the exact logarithm.

    Examples:
        >>> P = torch.eye(3, dtype=torch.float64)
        >>> Q = 2.0 * torch.eye(3, dtype=torch.float64)
        >>> matrix_cross_entropy(P, Q, taylor_order=None)  # -3 log 2
        tensor(-2.0794, dtype=torch.float64)
    """
    log_q = matrix_log(Q) if taylor_order is None else matrix_log_taylor(Q, taylor_order)
    return -(P * log_q.mT).sum()


def _centered(x: Tensor) -> Tensor:
    # Z^T J_m Y == (Z - mean Z)^T (Y - mean Y): subtract the means, never build J_m.
    return x - x.mean(dim=0, keepdim=True)


def mce_uniformity(
    p: Tensor, z: Tensor, lamda: float = 1.0, mu: float = 1.0, taylor_order: int | None = 4
) -> Tensor:
    """Matrix-SSL uniformity term ``MCE(lamda I, C + mu I)`` with ``C = p^T J_m z / m``.

    ``tr((C + (mu - 1) I)^k)`` follows from ``tr(K^j)``, ``K`` the smaller matrix with C's
    non-zero spectrum; ``taylor_order=None`` gives exactly ``-lamda * log|det(C + mu I)|``.

    Args:
        p: Target embeddings (m, d), rows already L2-normalised.
        z: Online embeddings (m, d), rows already L2-normalised.
        lamda: Scale of the target matrix ``lamda * I``.
        mu: Ridge added to the cross-covariance.
        taylor_order: Taylor terms of the logarithm, or None for the exact log-determinant.
    """
    m, d = z.shape
    pc, zc = _centered(p), _centered(z)
    if taylor_order is None:  # det(mu I_d + C) = mu^d det(I_d + C / mu)
        return -lamda * (d * math.log(mu) + logdet_identity_plus_cross(pc, zc, 1 / (m * mu), None))
    K = (zc @ pc.mT) / m if m <= d else (pc.mT @ zc) / m
    return -lamda * log_series(shifted_traces(d, trace_powers(K, taylor_order), mu - 1.0))


def _log1p_over_x(mu: float) -> tuple:
    """``g(x) = log(1 + x / mu) / x`` and ``g'(x)``, with series near ``x = 0`` (finite at 0)."""

    def parts(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        r = x / mu
        small = r.abs() < 1e-3
        return r, small, torch.where(small, torch.ones_like(x), x)

    def g(x: Tensor) -> Tensor:
        r, small, safe = parts(x)
        series = (1 - r / 2 + r**2 / 3 - r**3 / 4) / mu
        return torch.where(small, series, torch.log1p(r) / safe)

    def dg(x: Tensor) -> Tensor:
        r, small, safe = parts(x)
        series = (-1 / 2 + 2 * r / 3 - 3 * r**2 / 4 + 4 * r**3 / 5) / mu**2
        return torch.where(small, series, (r / (1 + r) - torch.log1p(r)) / safe**2)

    return g, dg


def mce_alignment(p: Tensor, z: Tensor, mu: float = 1.0, taylor_order: int | None = 4) -> Tensor:
    """Matrix-SSL alignment term ``MCE(S_p + mu I, S_z + mu I)`` of the two covariances.

    ``S_p = p^T J_m p / m``, ``S_z = z^T J_m z / m``; for ``m <= d`` the traces come from
    ``G = z_c z_c^T / m`` and ``B = (z_c p_c^T)(p_c z_c^T) / m^2``, and the exact logarithm is
    ``log(S_z + mu I) = log(mu) I + z_c^T g(G) z_c / m`` with ``g(x) = log(1 + x / mu) / x``.

    Args:
        p: Target embeddings (m, d), rows already L2-normalised (plays P).
        z: Online embeddings (m, d), rows already L2-normalised (plays Q).
        mu: Ridge added to both covariances.
        taylor_order: Taylor terms of the logarithm, or None for the exact logarithm.
    """
    m, d = z.shape
    pc, zc = _centered(p), _centered(z)
    trace_sp = (pc * pc).sum() / m
    if m <= d:
        G = (zc @ zc.mT) / m
        cross = (zc @ pc.mT) / m
        B = cross @ cross.mT  # tr(S_p S_z^j) = tr(B G^(j-1))
    else:
        G = (zc.mT @ zc) / m  # S_z
        sp = (pc.mT @ pc) / m
        B = sp @ G
    if taylor_order is None:
        if m <= d:
            gG = symmetric_matrix_function(G, *_log1p_over_x(mu))
            # tr(P log Q) = log(mu) tr(P) + tr((B + mu G) g(G))
            return -(math.log(mu) * (trace_sp + mu * d) + ((B + mu * G) * gG).sum())
        log_q = matrix_log(G + mu * _eye_like(G))
        return -((sp * log_q).sum() + mu * torch.diagonal(log_q).sum())
    # G^1..G^(order-1) (symmetric) give tr(G^j) = sum(G^(j-1) * G) and tr(B G^(j-1)).
    powers = matrix_powers(G, taylor_order - 1)
    sz_traces = [torch.trace(G)] + [(power * G).sum() for power in powers]
    sp_sz_traces = [torch.trace(B)] + [(B * power).sum() for power in powers]
    tr_a = shifted_traces(d, sz_traces, mu - 1.0)  # tr(A^k), A = S_z + (mu - 1) I
    tr_sp_a = shifted_traces(trace_sp, sp_sz_traces, mu - 1.0)  # tr(S_p A^k)
    return -log_series([a + mu * b for a, b in zip(tr_sp_a, tr_a, strict=True)])
