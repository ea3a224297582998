"""Matrix functions with gradients that stay finite where eigenvalues repeat: ``eigh``'s backward
divides by ``lambda_i - lambda_j``, infinite for every "low rank + mu * I" matrix here;
Daleckii-Krein divided differences tend to ``f'(lambda)``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import accumulate, repeat
from math import comb

import torch
from torch import Tensor

from lightly_matrix.utils.checks import check_positive_int

ScalarFn = Callable[[Tensor], Tensor]


class _SymmetricMatrixFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, S: Tensor, f: ScalarFn, df: ScalarFn) -> Tensor:  # type: ignore[override]
        try:
            eigvals, U = torch.linalg.eigh(0.5 * (S + S.mT))
        except torch.linalg.LinAlgError as err:
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
        # Divided differences (f(l_i) - f(l_j)) / (l_i - l_j), f' at the midpoint on (near) ties:
        # below this gap the quotient loses more to cancellation than f' is off.
        fl = ctx.f(eigvals)
        diff = eigvals[:, None] - eigvals[None, :]
        close = diff.abs() <= 1e-6 * eigvals.abs().max().clamp(min=1.0)
        quotient = (fl[:, None] - fl[None, :]) / torch.where(close, torch.ones_like(diff), diff)
        divided = torch.where(close, ctx.df(0.5 * (eigvals[:, None] + eigvals[None, :])), quotient)
        grad_S = U @ (divided * (U.mT @ grad @ U)) @ U.mT
        return 0.5 * (grad_S + grad_S.mT), None, None


def symmetric_matrix_function(S: Tensor, f: ScalarFn, df: ScalarFn) -> Tensor:
    """``U f(Lambda) U^T`` for a symmetric ``S = U Lambda U^T``; ``df``, the derivative of ``f``,
    gives the gradient where eigenvalues (nearly) coincide."""
    return _SymmetricMatrixFunction.apply(S, f, df)  # type: ignore[no-any-return]


def matrix_log(Q: Tensor) -> Tensor:
    """Exact logarithm of a symmetric positive-definite matrix (eigendecomposition).

    Examples:
        >>> Q = torch.eye(3, dtype=torch.float64) * 2.0
        >>> torch.allclose(matrix_log(Q), torch.eye(3, dtype=torch.float64) * 0.6931471805599453)
        True
    """
    return symmetric_matrix_function(Q, torch.log, torch.reciprocal)


def matrix_log_taylor(Q: Tensor, order: int = 4) -> Tensor:
    """``sum_{k=1..order} (-1)^(k+1) (Q - I)^k / k``: the Matrix-SSL code's Taylor logarithm
    (order 4), valid only for a spectrum of ``Q - I`` inside the unit disc.

    Examples:
        >>> Q = torch.eye(2) * 1.1
        >>> matrix_log_taylor(Q, order=4)[0, 0]  # log(1.1) = 0.09531
        tensor(0.0953)
    """
    check_positive_int("order", order)
    return log_series(matrix_powers(Q - _eye_like(Q), order))


def matrix_powers(A: Tensor, n: int) -> list[Tensor]:
    """``[A, A^2, ..., A^n]`` (empty for ``n = 0``)."""
    return list(accumulate(repeat(A, n), torch.matmul))


def log_series(terms: Sequence[Tensor]) -> Tensor:
    """``sum_k (-1)^(k+1) terms[k-1] / k``: ``log(1 + x)`` from the powers (or their traces)."""
    return sum(((-1) ** k / (k + 1) * t for k, t in enumerate(terms)), torch.zeros_like(terms[0]))


def trace_powers(K: Tensor, order: int) -> list[Tensor]:
    """``[tr(K), ..., tr(K^order)]`` with ``ceil(order / 2) - 1`` products, by
    ``tr(K^(a+b)) = sum(K^a * (K^b)^T)``."""
    check_positive_int("order", order)
    powers = matrix_powers(K, (order + 1) // 2)
    rest = [(powers[(j + 1) // 2 - 1] * powers[j // 2 - 1].mT).sum() for j in range(2, order + 1)]
    return [torch.diagonal(K).sum(), *rest]


def shifted_traces(trace0: Tensor | float, traces: Sequence[Tensor], shift: float) -> list[Tensor]:
    """``tr(X (S + shift I)^k)``, ``k = 1..len(traces)``, from ``traces[j-1] = tr(X S^j)`` and
    ``trace0 = tr(X)`` by the binomial theorem (no ``d x d`` matrix)."""
    every = [torch.as_tensor(trace0, dtype=traces[0].dtype, device=traces[0].device), *traces]
    return [
        sum(comb(k, j) * shift ** (k - j) * every[j] for j in range(k + 1))  # type: ignore[misc]
        for k in range(1, len(traces) + 1)
    ]


def logdet_spd(S: Tensor) -> Tensor:
    """Log-determinant of a symmetric positive-definite matrix through its Cholesky factor.

    Raises:
        ValueError: If ``S`` is not positive definite (instead of NaN) or on the meta device.
    """
    if S.is_meta:
        raise ValueError(
            "cannot evaluate a log-determinant of meta tensors (they hold no data); create or move "
            "the inputs to cpu or cuda first."
        )
    L, info = torch.linalg.cholesky_ex(S)
    if bool(info.any()):
        raise ValueError(
            f"matrix of shape {tuple(S.shape)} is not positive definite (Cholesky failed at "
            f"column {int(info.max())}); inputs contain inf/NaN or the ridge eps is too small."
        )
    return 2.0 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)


def _eye_like(K: Tensor) -> Tensor:
    return torch.eye(K.shape[-1], dtype=K.dtype, device=K.device)


def logdet_identity_plus_gram(F: Tensor, scale: float) -> Tensor:
    """``logdet(I_d + scale * F^T F)`` for ``F`` (m, d), on the smaller side (Sylvester).

    Examples:
        >>> F = torch.randn(8, 64, dtype=torch.float64)
        >>> dense = torch.logdet(torch.eye(64, dtype=torch.float64) + 0.5 * F.T @ F)
        >>> torch.allclose(logdet_identity_plus_gram(F, 0.5), dense)
        True
    """
    gram = F @ F.mT if F.shape[0] <= F.shape[1] else F.mT @ F
    return logdet_spd(_eye_like(gram) + scale * gram)


def logdet_identity_plus_cross(
    a: Tensor, b: Tensor, scale: float, taylor_order: int | None = 4
) -> Tensor:
    """``logdet(I_d + scale * a^T b)`` for ``a``, ``b`` of shape (m, d), on the smaller side.

    The Taylor form ``sum_k (-1)^(k+1) tr((scale a^T b)^k) / k`` (MEC's) needs the spectrum in
    the unit disc; ``taylor_order=None`` gives ``log|det(...)|`` exactly.

    Examples:
        >>> a, b = torch.randn(8, 64, dtype=torch.float64), torch.randn(8, 64, dtype=torch.float64)
        >>> dense = torch.logdet(torch.eye(64, dtype=torch.float64) + 0.01 * a.T @ b)
        >>> torch.allclose(logdet_identity_plus_cross(a, b, 0.01, taylor_order=None), dense)
        True
        >>> torch.allclose(logdet_identity_plus_cross(a, b, 0.01, taylor_order=40), dense)
        True
    """
    K = scale * (b @ a.mT if a.shape[0] <= a.shape[1] else a.mT @ b)
    if taylor_order is None:
        return torch.linalg.slogdet(_eye_like(K) + K)[1]
    return log_series(trace_powers(K, taylor_order))
