"""Matrix functions with gradients that stay finite where eigenvalues repeat.

``torch.linalg.eigh`` differentiates through eigenvectors with ``1 / (lambda_i - lambda_j)``
terms, which are infinite for the repeated eigenvalues that every "low rank + mu * I" matrix in
these losses has. :func:`symmetric_matrix_function` instead differentiates with the
Daleckii-Krein formula, whose divided differences have a finite limit ``f'(lambda)``.
"""

from __future__ import annotations

from collections.abc import Callable
from math import comb

import torch
from torch import Tensor

from lightly_matrix.utils.checks import check_positive_int

ScalarFn = Callable[[Tensor], Tensor]


def compute_dtype(x: Tensor) -> torch.dtype:
    """The dtype matrix functions run in: float64 stays float64, everything else is float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _divided_differences(eigvals: Tensor, f: ScalarFn, df: ScalarFn) -> Tensor:
    """First divided differences ``(f(l_i) - f(l_j)) / (l_i - l_j)``, ``f'`` on (near) ties."""
    fl = f(eigvals)
    diff = eigvals[:, None] - eigvals[None, :]
    # Below this gap the quotient loses more to cancellation than f' at the midpoint is off.
    tol = 1e-6 * eigvals.abs().max().clamp(min=1.0)
    close = diff.abs() <= tol
    safe = torch.where(close, torch.ones_like(diff), diff)
    quotient = (fl[:, None] - fl[None, :]) / safe
    midpoint = 0.5 * (eigvals[:, None] + eigvals[None, :])
    return torch.where(close, df(midpoint), quotient)


class _SymmetricMatrixFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, S: Tensor, f: ScalarFn, df: ScalarFn) -> Tensor:  # type: ignore[override]
        S = 0.5 * (S + S.mT)
        try:
            eigvals, U = torch.linalg.eigh(S)
        except torch.linalg.LinAlgError as err:  # NaN/inf in S: say so, as logdet_spd does
            raise ValueError(
                f"eigendecomposition of a matrix of shape {tuple(S.shape)} failed ({err}); "
                "inputs contain inf/NaN."
            ) from err
        ctx.save_for_backward(eigvals, U)
        ctx.f, ctx.df = f, df
        return (U * f(eigvals)) @ U.mT

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        eigvals, U = ctx.saved_tensors
        D = _divided_differences(eigvals, ctx.f, ctx.df)
        inner = D * (U.mT @ grad @ U)
        grad_S = U @ inner @ U.mT
        return 0.5 * (grad_S + grad_S.mT), None, None


def symmetric_matrix_function(S: Tensor, f: ScalarFn, df: ScalarFn) -> Tensor:
    """``f(S)`` for a symmetric matrix ``S`` via its eigendecomposition.

    Args:
        S: Symmetric matrix of shape (n, n). Only ``(S + S^T) / 2`` is used.
        f: Elementwise scalar function applied to the eigenvalues.
        df: Its derivative, used for the gradient where eigenvalues (nearly) coincide.

    Returns:
        ``U f(Lambda) U^T``, differentiable with finite gradients for repeated eigenvalues.
    """
    out: Tensor = _SymmetricMatrixFunction.apply(S, f, df)
    return out


def matrix_log(Q: Tensor) -> Tensor:
    """Exact logarithm of a symmetric positive-definite matrix (eigendecomposition).

    Args:
        Q: Symmetric positive-definite matrix of shape (n, n).

    Returns:
        ``log(Q)`` of shape (n, n), with finite gradients even for repeated eigenvalues.

    Examples:
        >>> Q = torch.eye(3, dtype=torch.float64) * 2.0
        >>> torch.allclose(matrix_log(Q), torch.eye(3, dtype=torch.float64) * 0.6931471805599453)
        True
    """
    return symmetric_matrix_function(Q, torch.log, torch.reciprocal)


def matrix_log_taylor(Q: Tensor, order: int = 4) -> Tensor:
    """Taylor series of the matrix logarithm around the identity, as the Matrix-SSL code uses.

    ``log(Q) ~ sum_{k=1..order} (-1)^(k+1) (Q - I)^k / k``; valid only where the spectrum of
    ``Q - I`` lies inside the unit disc. Works for non-symmetric ``Q``.

    Args:
        Q: Square matrix of shape (n, n).
        order: Number of series terms (the authors use 4).

    Returns:
        The truncated series, shape (n, n).

    Examples:
        >>> Q = torch.eye(2) * 1.1
        >>> matrix_log_taylor(Q, order=4)[0, 0]  # log(1.1) = 0.09531
        tensor(0.0953)
    """
    check_positive_int("order", order)
    A = Q - torch.eye(Q.shape[-1], dtype=Q.dtype, device=Q.device)
    out = torch.zeros_like(Q)
    power = A
    for k in range(1, order + 1):
        if k > 1:
            power = power @ A
        out = out + ((-1) ** (k + 1) / k) * power
    return out


def trace_powers(K: Tensor, order: int) -> list[Tensor]:
    """``[tr(K), tr(K^2), ..., tr(K^order)]`` with ``ceil(order / 2) - 1`` matrix products.

    Uses ``tr(K^(a+b)) = sum(K^a * (K^b)^T)``: the fourth power needs only ``K @ K``.

    Args:
        K: Square matrix (n, n), not necessarily symmetric.
        order: Highest power.

    Returns:
        List of ``order`` scalar tensors.
    """
    check_positive_int("order", order)
    half = (order + 1) // 2
    powers = [K]
    for _ in range(1, half):
        powers.append(powers[-1] @ K)
    traces = [torch.diagonal(K).sum()]
    for j in range(2, order + 1):
        a, b = (j + 1) // 2, j // 2
        traces.append((powers[a - 1] * powers[b - 1].mT).sum())
    return traces


def shifted_trace_powers(traces: list[Tensor], dim: int, shift: float) -> list[Tensor]:
    """``tr((C + shift * I)^k)`` for ``k = 1..len(traces)`` from ``traces[j-1] = tr(C^j)``.

    Binomial expansion with ``tr(C^0) = dim``: this is how the ``mu * I`` part of every Matrix-SSL
    matrix is handled exactly without ever forming a ``dim x dim`` matrix.
    """
    all_traces = [torch.as_tensor(float(dim), dtype=traces[0].dtype, device=traces[0].device)]
    all_traces += traces
    out = []
    for k in range(1, len(traces) + 1):
        out.append(sum(comb(k, j) * shift ** (k - j) * all_traces[j] for j in range(k + 1)))
    return out  # type: ignore[return-value]


def logdet_spd(S: Tensor) -> Tensor:
    """Log-determinant of a symmetric positive-definite matrix through its Cholesky factor.

    Raises:
        ValueError: If ``S`` is not positive definite, instead of returning NaN.
    """
    L, info = torch.linalg.cholesky_ex(S)
    if bool(info.any()):
        raise ValueError(
            f"matrix of shape {tuple(S.shape)} is not positive definite (Cholesky failed at "
            f"column {int(info.max())}); inputs contain inf/NaN or the ridge eps is too small."
        )
    return 2.0 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)


def logdet_identity_plus_gram(F: Tensor, scale: float) -> Tensor:
    """``logdet(I_d + scale * F^T F)`` for ``F`` of shape (m, d), on the smaller side.

    By Sylvester's identity it equals ``logdet(I_m + scale * F F^T)``: the ``min(m, d)``-sized
    Gram matrix is factorised, never the larger one.

    Args:
        F: Matrix of shape (m, d).
        scale: Non-negative factor in front of the Gram matrix.

    Returns:
        Scalar tensor.

    Examples:
        >>> F = torch.randn(8, 64, dtype=torch.float64)
        >>> dense = torch.logdet(torch.eye(64, dtype=torch.float64) + 0.5 * F.T @ F)
        >>> torch.allclose(logdet_identity_plus_gram(F, 0.5), dense)
        True
    """
    m, d = F.shape
    gram = F @ F.mT if m <= d else F.mT @ F
    eye = torch.eye(gram.shape[0], dtype=F.dtype, device=F.device)
    return logdet_spd(eye + scale * gram)


def logdet_identity_plus_cross(
    a: Tensor, b: Tensor, scale: float, taylor_order: int | None = 4
) -> Tensor:
    """``logdet(I_d + scale * a^T b)`` for ``a``, ``b`` of shape (m, d), on the smaller side.

    ``a^T b`` (d x d) and ``b a^T`` (m x m) have the same non-zero spectrum, so every
    ``tr((scale * a^T b)^k)`` and the determinant are taken from the ``min(m, d)``-sized one.
    The matrix is not symmetric: the Taylor form is ``sum_k (-1)^(k+1) tr((scale a^T b)^k) / k``,
    valid where the spectrum of ``scale * a^T b`` lies inside the unit disc (MEC's
    Taylor-expanded coding length); ``taylor_order=None`` gives ``log|det(...)|`` exactly.

    Args:
        a: Matrix of shape (m, d).
        b: Matrix of the same shape.
        scale: Factor in front of the cross product.
        taylor_order: Terms of the series, or None for the exact log-determinant.

    Returns:
        Scalar tensor.

    Examples:
        >>> a, b = torch.randn(8, 64, dtype=torch.float64), torch.randn(8, 64, dtype=torch.float64)
        >>> dense = torch.logdet(torch.eye(64, dtype=torch.float64) + 0.01 * a.T @ b)
        >>> torch.allclose(logdet_identity_plus_cross(a, b, 0.01, taylor_order=None), dense)
        True
        >>> series = logdet_identity_plus_cross(a, b, 0.01, taylor_order=40)
        >>> torch.allclose(series, dense)
        True
    """
    m, d = a.shape
    K = scale * (b @ a.mT if m <= d else a.mT @ b)
    if taylor_order is None:
        eye = torch.eye(K.shape[0], dtype=K.dtype, device=K.device)
        return torch.linalg.slogdet(eye + K)[1]
    traces = trace_powers(K, taylor_order)
    return sum((-1) ** (k + 1) / k * t for k, t in enumerate(traces, start=1))  # type: ignore[return-value]
