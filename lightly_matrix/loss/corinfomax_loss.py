"""CorInfoMax loss: log-determinant of running covariances plus Euclidean alignment [0]."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from lightly_matrix.functional._linalg import logdet_spd
from lightly_matrix.loss._common import BatchLoss, check_number, check_positive_int

_STATS = ("running_mean_a", "running_cov_a", "running_mean_b", "running_cov_b")


class CorInfoMaxLoss(BatchLoss):
    """CorInfoMax loss from [0], with the running statistics as float64 buffers.

    For each branch ``b`` with embeddings ``z_b`` (N x D; gathered over processes if
    ``gather_distributed``, then L2-normalised if ``normalize``):

    - ``mu_b <- mean_momentum * mu_b + (1 - mean_momentum) * mean(z_b)``
    - ``R_b <- cov_momentum * R_b + (1 - cov_momentum) * (z_b - mu_b)^T (z_b - mu_b) / N``
      (old ``R_b`` detached)
    - ``cov_loss = -(logdet(R_1 + eps I) + logdet(R_2 + eps I)) / D``
    - ``loss = alpha * mean((z_1 - z_2)^2) + cov_weight * cov_loss``

    The momenta weigh the OLD estimate. The statistics stay float64 through ``.to()``, are in
    ``state_dict`` and update in training mode only; a global batch smaller than D warns once.

    - [0] Ozsoy et al., Self-Supervised Learning with an Information Maximization Criterion,
      NeurIPS 2022, https://arxiv.org/abs/2209.07999

    Args:
        dim: Embedding dimension D.
        alpha: Weight of the invariance (mean squared error) term.
        cov_weight: Weight of the log-determinant term.
        cov_momentum: Forgetting factor of the running covariances (weight of the old one).
        mean_momentum: Forgetting factor of the running means.
        cov_init: Initial covariance ``cov_init * I``.
        eps: Ridge added before the log-determinant.
        normalize: L2-normalise the embeddings first (every published run does).
        gather_distributed: See :class:`~lightly_matrix.loss.BatchLoss`.
        la_R: The authors' name of ``cov_momentum``.
        la_mu: The authors' name of ``mean_momentum``.
        R_ini: The authors' name of ``cov_init``.

    Examples:
        >>> import torch
        >>> from lightly_matrix.loss import CorInfoMaxLoss
        >>> loss_fn = CorInfoMaxLoss(dim=64)
        >>> z0 = torch.randn(128, 64, requires_grad=True)  # batch >= dim
        >>> z1 = torch.randn(128, 64, requires_grad=True)
        >>> loss_fn(z0, z1).backward()
        >>> loss_fn.running_cov_a.dtype
        torch.float64
        >>> # On a GPU, move the criterion once: loss_fn = CorInfoMaxLoss(dim=64).to("cuda")
    """

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
        *,
        la_R: float | None = None,
        la_mu: float | None = None,
        R_ini: float | None = None,
    ) -> None:
        super().__init__(gather_distributed)
        self.dim = check_positive_int("dim", dim, hint="it is the projector output size")
        self.alpha = check_number("alpha", alpha, low=0.0, hint="the invariance weight (250-2000).")
        hint = "the log-determinant weight (1 in the paper)."
        self.cov_weight = check_number("cov_weight", cov_weight, low=0.0, hint=hint)
        cov_momentum = self.resolve_alias("cov_momentum", cov_momentum, "la_R", la_R)
        mean_momentum = self.resolve_alias("mean_momentum", mean_momentum, "la_mu", la_mu)
        hint = "it weighs the OLD running estimate (the authors use 0.01 or 0.1)."
        self.cov_momentum, self.mean_momentum = (
            check_number(name, value, low=0.0, high=1.0, high_open=True, hint=hint)
            for name, value in (("cov_momentum", cov_momentum), ("mean_momentum", mean_momentum))
        )
        cov_init = self.resolve_alias("cov_init", cov_init, "R_ini", R_ini)
        hint = "the first covariance is cov_init * I."
        self.cov_init = check_number("cov_init", cov_init, low=0.0, low_open=True, hint=hint)
        self.eps = check_number("eps", eps, low=0.0, hint="the ridge before the log-determinant.")
        self.normalize = normalize
        for name in _STATS:
            shape = (dim, dim) if "cov" in name else (dim,)
            self.register_buffer(name, torch.zeros(shape, dtype=torch.float64))
        self.reset_running_stats()

    def _apply(self, fn: Callable[[Tensor], Tensor], *args, **kwargs) -> CorInfoMaxLoss:  # type: ignore[override]
        # Follow device moves but keep the statistics float64 through .half() / .to(bf16).
        saved = {name: getattr(self, name) for name in _STATS}
        super()._apply(fn, *args, **kwargs)
        for name, value in saved.items():
            setattr(self, name, value.to(getattr(self, name).device, torch.float64))
        return self

    def reset_running_stats(self) -> None:
        """Reset the running means to 0 and the covariances to ``cov_init * I``."""
        for name in _STATS:
            getattr(self, name).zero_()
            if "cov" in name:
                getattr(self, name).diagonal().fill_(self.cov_init)

    def _updated_stats(self, z: Tensor, mean: Tensor, cov: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """New running mean and covariance (old ones detached), ``logdet(new cov + eps I)``."""
        z = z.to(torch.float64)
        n, d = z.shape
        new_mean = self.mean_momentum * mean.detach() + (1.0 - self.mean_momentum) * z.mean(dim=0)
        zc = z - new_mean
        scale = (1.0 - self.cov_momentum) / n
        eye = torch.eye(d, dtype=torch.float64, device=z.device)
        new_cov = self.cov_momentum * cov.detach() + scale * (zc.mT @ zc)
        if n < d:
            # logdet(A + c Zc^T Zc) = logdet(A) + logdet(I_N + c W^T W), A = L L^T, W = L^-1 Zc^T
            # (determinant lemma): the D x D Cholesky factor needs no backward pass.
            chol, info = torch.linalg.cholesky_ex(self.cov_momentum * cov.detach() + self.eps * eye)
            if not bool(info.any()):
                w = torch.linalg.solve_triangular(chol, zc.mT, upper=False)
                small = torch.eye(n, dtype=torch.float64, device=z.device) + scale * (w.mT @ w)
                logdet = 2.0 * torch.log(torch.diagonal(chol)).sum() + logdet_spd(small)
                return new_mean, new_cov.detach(), logdet
        return new_mean, new_cov, logdet_spd(new_cov + self.eps * eye)

    def forward(self, z_a: Tensor, z_b: Tensor) -> Tensor:
        """Loss of the two branches' embeddings, each of shape (batch, dim)."""
        with self.global_batch(z_a, z_b, normalize=self.normalize) as (za, zb):
            if za.shape[1] != self.dim:
                raise ValueError(
                    f"CorInfoMaxLoss was built with dim={self.dim} but got embeddings of dim "
                    f"{za.shape[1]}; pass dim equal to the projector's output size."
                )
            if {za.device, zb.device} != {self.running_cov_a.device}:
                raise ValueError(
                    f"CorInfoMaxLoss holds its running statistics on {self.running_cov_a.device} "
                    f"but got embeddings on {za.device}; call criterion.to(device) once after "
                    "creating it (or make it a submodule of the model that is moved)."
                )
            if len(za) < self.dim:
                self.warn_once(
                    "small batch",
                    f"the batch has {len(za)} rows (over all processes) but dim={self.dim}; the "
                    "rank-deficient covariances give the log-determinant little signal. Use a "
                    "global batch of at least dim rows (published: 3-8 x dim) or a smaller dim.",
                )
            new_a = self._updated_stats(za, self.running_mean_a, self.running_cov_a)
            new_b = self._updated_stats(zb, self.running_mean_b, self.running_cov_b)
            cov_loss = -(new_a[2] + new_b[2]) / self.dim
            loss = self.alpha * F.mse_loss(za, zb) + self.cov_weight * cov_loss.to(za.dtype)
        if self.training:
            with torch.no_grad():
                for name, value in zip(_STATS, new_a[:2] + new_b[:2], strict=True):
                    getattr(self, name).copy_(value)
        return loss
