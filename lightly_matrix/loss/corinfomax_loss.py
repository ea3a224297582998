"""CorInfoMax loss: log-determinant of running covariances plus Euclidean alignment [0]."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightly_matrix.functional._linalg import logdet_spd
from lightly_matrix.loss._common import (
    check_batch,
    check_gather_available,
    check_global_batch,
    check_number,
    gather_rows,
    no_autocast,
    to_compute_dtype,
)
from lightly_matrix.utils.checks import check_positive_int
from lightly_matrix.utils.deprecation import resolve_renamed


class CorInfoMaxLoss(nn.Module):
    """CorInfoMax loss from [0], with the running statistics as float64 buffers.

    For each branch ``b`` with embeddings ``z_b`` (N x D; gathered over processes if
    ``gather_distributed``, then L2-normalised if ``normalize``):

    - ``mu_b <- mean_momentum * mu_b + (1 - mean_momentum) * mean(z_b)``
    - ``R_b <- cov_momentum * R_b + (1 - cov_momentum) * (z_b - mu_b)^T (z_b - mu_b) / N``
      (old ``R_b`` detached)
    - ``cov_loss = -(logdet(R_1 + eps I) + logdet(R_2 + eps I)) / D``
    - ``loss = alpha * mean((z_1 - z_2)^2) + cov_weight * cov_loss``

    ``cov_momentum`` and ``mean_momentum`` weigh the OLD estimate, as a teacher momentum does
    (0.01 = mostly the current batch). The running means and covariances are registered buffers:
    saved in ``state_dict``, moved by ``.to()`` (they stay float64 whatever dtype the module is
    cast to), updated in training mode and only read in eval mode. The covariances are full-rank
    running estimates, so a D x D Cholesky factorisation is unavoidable; when the batch is
    smaller than D the gradient is nevertheless taken on the N x N side (matrix determinant
    lemma). D is 64 to 512 in the published settings.

    Batch size: each step's covariance ``zc^T zc / N`` has rank at most ``N - 1``. With a
    (global) batch smaller than D the updated covariance is nearly singular in the directions
    the batch misses (only ``cov_momentum`` times the old estimate is left there), its
    log-determinant is dominated by those, and training tends to plateau. The loss warns once
    (``UserWarning``) when the batch, counted after gathering over processes, is smaller than D.
    The published runs use 3 to 8 times D (CIFAR-10: 512 for D = 64; Tiny-ImageNet: 1024 for D =
    128; ImageNet-1k: 1536 for D = 512).



    Device: the statistics are buffers, so they move with the module. A criterion created
    outside the model (as in plain-PyTorch training loops) must be moved once with
    ``criterion.to(device)``; a forward on another device raises a ``ValueError`` saying so
    rather than moving the statistics behind the caller's back.

    - [0] Ozsoy et al., Self-Supervised Learning with an Information Maximization Criterion,
      NeurIPS 2022, https://arxiv.org/abs/2209.07999

    Attributes:
        dim: Embedding dimension D.
        alpha: Weight of the invariance (mean squared error) term.
        cov_weight: Weight of the log-determinant term.
        cov_momentum: Forgetting factor of the running covariances (the authors' ``la_R``).
        mean_momentum: Forgetting factor of the running means (the authors' ``la_mu``).
        cov_init: Initial covariance ``cov_init * I`` (the authors' ``R_ini``). The authors'
            three names are still accepted, with a ``DeprecationWarning``.
        eps: Ridge added before the log-determinant.
        normalize: L2-normalise the embeddings first (every published run does).
        gather_distributed: Gather embeddings from all processes first, so every process
            holds the same covariance estimates. Without an initialised process group
            the local batch is used, as in Lightly's losses.

    Raises:
        ValueError: If a hyper-parameter is NaN, infinite or out of range, or gathering is
            unavailable.

    Examples:
        >>> import torch
        >>> from lightly_matrix.loss import CorInfoMaxLoss
        >>> loss_fn = CorInfoMaxLoss(dim=64)
        >>> z0 = torch.randn(128, 64, requires_grad=True)  # batch >= dim, see above
        >>> z1 = torch.randn(128, 64, requires_grad=True)
        >>> loss = loss_fn(z0, z1)
        >>> loss.backward()
        >>> loss_fn.running_cov_a.dtype
        torch.float64
        >>> # On a GPU, move the criterion once: loss_fn = CorInfoMaxLoss(dim=64).to("cuda")
    """

    #: The authors' argument names -> ours.
    renamed: ClassVar[dict[str, str]] = {
        "la_R": "cov_momentum",
        "la_mu": "mean_momentum",
        "R_ini": "cov_init",
    }

    running_mean_a: Tensor
    running_mean_b: Tensor
    running_cov_a: Tensor
    running_cov_b: Tensor

    def __init__(
        self,
        dim: int,
        alpha: float = 250.0,
        cov_weight: float = 1.0,
        cov_momentum: float = 0.01,
        mean_momentum: float = 0.01,
        cov_init: float = 1.0,
        eps: float = 1e-8,
        normalize: bool = True,
        gather_distributed: bool = False,
        **deprecated: float,
    ) -> None:
        super().__init__()
        renamed = resolve_renamed(
            type(self).__name__,
            self.renamed,
            deprecated,
            {"cov_momentum": cov_momentum, "mean_momentum": mean_momentum, "cov_init": cov_init},
            {"cov_momentum": 0.01, "mean_momentum": 0.01, "cov_init": 1.0},
        )
        cov_momentum, mean_momentum = renamed["cov_momentum"], renamed["mean_momentum"]
        cov_init = renamed["cov_init"]
        check_positive_int("dim", dim, hint="it is the projector output size")
        alpha = check_number("alpha", alpha, low=0.0, hint="the invariance weight (250 to 2000).")
        cov_weight = check_number(
            "cov_weight", cov_weight, low=0.0, hint="the log-determinant weight (1 in the paper)."
        )
        cov_momentum, mean_momentum = (
            check_number(
                name,
                value,
                low=0.0,
                high=1.0,
                high_open=True,
                hint="it weighs the OLD running estimate (the authors use 0.01 or 0.1).",
            )
            for name, value in (("cov_momentum", cov_momentum), ("mean_momentum", mean_momentum))
        )
        cov_init = check_number(
            "cov_init",
            cov_init,
            low=0.0,
            low_open=True,
            hint="the first covariance is cov_init * I.",
        )
        eps = check_number("eps", eps, low=0.0, hint="the ridge before the log-determinant.")
        check_gather_available(gather_distributed)
        self.dim = dim
        self.alpha = alpha
        self.cov_weight = cov_weight
        self.cov_momentum = cov_momentum
        self.mean_momentum = mean_momentum
        self.cov_init = cov_init
        self.eps = eps
        self.normalize = normalize
        self.gather_distributed = gather_distributed
        self._warned_small_batch = False
        eye = torch.eye(dim, dtype=torch.float64)
        self.register_buffer("running_mean_a", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("running_mean_b", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("running_cov_a", cov_init * eye)
        self.register_buffer("running_cov_b", cov_init * eye.clone())

    def _apply(self, fn: Callable[[Tensor], Tensor], *args, **kwargs) -> CorInfoMaxLoss:  # type: ignore[override]
        # Follow device moves, but keep the statistics in float64 through .half()/.to(bf16):
        # the original float64 values are moved to wherever fn sent the buffer.
        names = ("running_mean_a", "running_mean_b", "running_cov_a", "running_cov_b")
        saved = {name: getattr(self, name) for name in names}
        super()._apply(fn, *args, **kwargs)
        for name in names:
            moved = getattr(self, name)
            setattr(self, name, saved[name].to(device=moved.device, dtype=torch.float64))
        return self

    def _warn_if_small_batch(self, n: int) -> None:
        if n >= self.dim or self._warned_small_batch:
            return
        self._warned_small_batch = True
        warnings.warn(
            f"CorInfoMaxLoss: the batch has {n} rows (over all processes) but dim={self.dim}; "
            f"each batch covariance has rank < {self.dim}, so the log-determinant term gets "
            "little signal and training can plateau. Use a global batch of at least dim rows "
            "(the published runs use 3 to 8 x dim) or a smaller projector output. "
            "(warned once)",
            UserWarning,
            stacklevel=2,
        )

    def reset_running_stats(self) -> None:
        """Reset the running means to 0 and the covariances to ``cov_init * I``."""
        self.running_mean_a.zero_()
        self.running_mean_b.zero_()
        eye = torch.eye(self.dim, dtype=torch.float64, device=self.running_cov_a.device)
        self.running_cov_a.copy_(self.cov_init * eye)
        self.running_cov_b.copy_(self.cov_init * eye)

    def _updated_stats(self, z: Tensor, mean: Tensor, cov: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """New running mean and covariance, and ``logdet(new covariance + eps I)``.

        The gradient flows through the batch terms only (the old estimates are detached). The
        covariance is "old (constant) + rank-N update", so when the batch is smaller than the
        dimension the log-determinant is taken by the matrix determinant lemma:
        ``logdet(A + c Zc^T Zc) = logdet(A) + logdet(I_N + c W^T W)`` with ``A = L L^T`` and
        ``W = L^-1 Zc^T``; the D x D Cholesky factor then needs no backward pass.
        """
        z = z.to(torch.float64)
        n, d = z.shape
        new_mean = self.mean_momentum * mean.detach() + (1.0 - self.mean_momentum) * z.mean(dim=0)
        zc = z - new_mean
        scale = (1.0 - self.cov_momentum) / n
        eye = torch.eye(d, dtype=torch.float64, device=z.device)
        base = self.cov_momentum * cov.detach() + self.eps * eye
        if n < d:
            chol, info = torch.linalg.cholesky_ex(base)
            if not bool(info.any()):
                w = torch.linalg.solve_triangular(chol, zc.mT, upper=False)
                small = torch.eye(n, dtype=torch.float64, device=z.device) + scale * (w.mT @ w)
                logdet = 2.0 * torch.log(torch.diagonal(chol)).sum() + logdet_spd(small)
                with torch.no_grad():
                    new_cov = self.cov_momentum * cov + scale * (zc.mT @ zc)
                return new_mean, new_cov, logdet
        new_cov = self.cov_momentum * cov.detach() + scale * (zc.mT @ zc)
        return new_mean, new_cov, logdet_spd(new_cov + self.eps * eye)

    def forward(self, z_a: Tensor, z_b: Tensor) -> Tensor:
        """Loss of the two branches' embeddings.

        Args:
            z_a: Embeddings of the first view, shape (batch, dim).
            z_b: Embeddings of the second view, shape (batch, dim).

        Returns:
            Scalar loss (float32, or float64 for float64 inputs).
        """
        name = type(self).__name__
        check_batch(name, z_a, z_b, min_rows=1 if self.gather_distributed else 2)
        if z_a.shape[1] != self.dim:
            raise ValueError(
                f"CorInfoMaxLoss was built with dim={self.dim} but got embeddings of dim "
                f"{z_a.shape[1]}; pass dim equal to the projector's output size."
            )
        if z_a.device != self.running_cov_a.device or z_b.device != self.running_cov_a.device:
            raise ValueError(
                f"CorInfoMaxLoss holds its running statistics on {self.running_cov_a.device} but "
                f"got embeddings on {z_a.device}; call criterion.to(device) once after creating "
                "it (or make it a submodule of the model that is moved)."
            )
        with no_autocast(z_a):
            za, zb = to_compute_dtype(z_a, z_b)
            za = gather_rows(za, self.gather_distributed)
            zb = gather_rows(zb, self.gather_distributed)
            check_global_batch(name, za, z_a.shape[0])
            self._warn_if_small_batch(za.shape[0])
            if self.normalize:
                za, zb = F.normalize(za, dim=1), F.normalize(zb, dim=1)
            mean_a, cov_a, logdet_a = self._updated_stats(
                za, self.running_mean_a, self.running_cov_a
            )
            mean_b, cov_b, logdet_b = self._updated_stats(
                zb, self.running_mean_b, self.running_cov_b
            )
            cov_loss = -(logdet_a + logdet_b) / self.dim
            invariance = F.mse_loss(za, zb)
            loss = self.alpha * invariance + self.cov_weight * cov_loss.to(za.dtype)
        if self.training:
            with torch.no_grad():
                self.running_mean_a.copy_(mean_a)
                self.running_mean_b.copy_(mean_b)
                self.running_cov_a.copy_(cov_a)
                self.running_cov_b.copy_(cov_b)
        return loss
