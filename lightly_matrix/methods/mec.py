"""Maximum Entropy Coding [0]: BYOL-style online/EMA-teacher networks, coding-length loss.

- [0] Liu et al., Self-Supervised Learning via Maximum Entropy Coding, NeurIPS 2022,
  https://arxiv.org/abs/2210.11464
"""

from __future__ import annotations

from typing import Unpack

from torch import Tensor

from lightly_matrix.loss import MECLoss
from lightly_matrix.methods.ema_teacher import EMATeacherModule, TeacherArgs
from lightly_matrix.utils.checks import check_number


def warmup_eps_squared(step: int, warmup_steps: int, eps_squared: float, factor: float) -> float:
    """``factor * eps_squared`` at step 0, linearly down to ``eps_squared`` at the last warm-up
    step (the authors' ``np.linspace(8 / lamda, 1 / lamda, warmup_iters)``)."""
    if step >= warmup_steps - 1:
        return eps_squared
    return eps_squared * (factor + (1.0 - factor) * step / (warmup_steps - 1))


class MEC(EMATeacherModule):
    """MEC pretraining module [0]: Matrix-SSL's networks with :class:`~lightly_matrix.loss.MECLoss`.

    Defaults are the authors' ImageNet ResNet-50 run (``xinliu20/MEC``): ``eps^2 = 64``, Taylor
    order 4, ``eps^2`` 8x at first, down linearly over the warm-up. Arguments: :class:`TeacherArgs`.

    Args:
        eps_squared: Squared upper bound of the expected decoding error.
        eps_warmup_factor: ``eps^2`` at step 0 over ``eps_squared`` (>= 1; 1: no warm-up).
        taylor_order: Order of the Taylor series of the log-determinant (``None``: exact).

    Raises:
        ValueError: If ``eps_warmup_factor`` is below 1, or ``MECLoss`` refuses its arguments.
    """

    method = "mec"

    def __init__(
        self,
        *,
        eps_squared: float = 64.0,
        eps_warmup_factor: float = 8.0,
        taylor_order: int | None = 4,
        **shared: Unpack[TeacherArgs],
    ) -> None:
        super().__init__()
        hint = "eps^2 starts that many times larger (the authors use 8, 1 turns the warm-up off)"
        check_number("eps_warmup_factor", eps_warmup_factor, low=1.0, hint=hint)
        self._init_teacher()
        self.criterion = MECLoss(
            eps_squared=eps_squared,
            taylor_order=taylor_order,
            gather_distributed=self.hparams["gather_distributed"],
        )

    def current_eps_squared(self) -> float:
        """``eps^2`` of this step (warm-up by the global step, so a resumed run continues it)."""
        hp, total = self.hparams, int(self.trainer.estimated_stepping_batches)
        warmup = min(int(total / max(1, self.trainer.max_epochs or 1) * hp["warmup_epochs"]), total)
        step = self.trainer.global_step
        return warmup_eps_squared(step, warmup, hp["eps_squared"], hp["eps_warmup_factor"])

    def training_step(self, batch: tuple[list[Tensor], Tensor], batch_idx: int) -> Tensor:
        """The two-view step of the base; also logs this step's ``eps^2``."""
        self.log("eps_squared", self.current_eps_squared(), batch_size=len(batch[1]))
        return super().training_step(batch, batch_idx)

    def pair_loss(self, online: Tensor, target: Tensor) -> Tensor:
        """MEC loss of one (online prediction, teacher projection) pair at this step's ``eps^2``."""
        assert self.criterion is not None
        return self.criterion(online, target, eps_squared=self.current_eps_squared())
