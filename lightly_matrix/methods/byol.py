"""BYOL (Grill et al., NeurIPS 2020) on Matrix-SSL's recipe: the baseline that isolates the loss."""

from __future__ import annotations

from typing import Any, ClassVar, Unpack

from lightly.loss import NegativeCosineSimilarity
from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead

from lightly_matrix.methods.ema_teacher import EMATeacherModule, TeacherArgs


class BYOL(EMATeacherModule):
    """BYOL pretraining module: Lightly's BYOL heads (the paper's widths) and
    ``NegativeCosineSimilarity`` on the :class:`EMATeacherModule` recipe of Matrix-SSL.

    BYOL's ImageNet run: ``--optimizer lars --lr 0.2 --weight-decay 1.5e-6`` at batch 4096.
    Arguments: :class:`TeacherArgs`.
    """

    method = "byol"
    shared_defaults: ClassVar[dict[str, Any]] = {
        "hidden_dim": 4096,
        "output_dim": 256,
        "pred_hidden_dim": 4096,
    }

    def __init__(self, **shared: Unpack[TeacherArgs]) -> None:
        super().__init__()
        hp = self.hparams
        self._init_teacher(
            BYOLProjectionHead(self.feature_dim, hp["hidden_dim"], hp["output_dim"]),
            BYOLPredictionHead(hp["output_dim"], hp["pred_hidden_dim"], hp["output_dim"]),
        )
        self.criterion = NegativeCosineSimilarity()
