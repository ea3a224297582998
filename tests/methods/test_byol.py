from __future__ import annotations

import torch
import torch.nn.functional as F
from lightly.loss import NegativeCosineSimilarity
from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
from method_helpers import make_module

from lightly_matrix.methods import BYOL


def test_byol_uses_lightlys_heads_and_loss_with_the_papers_widths() -> None:
    defaults = BYOL.hparam_defaults()
    assert (defaults["hidden_dim"], defaults["output_dim"], defaults["pred_hidden_dim"]) == (
        4096,
        256,
        4096,
    )
    module = make_module("byol")
    assert isinstance(module.projection_head, BYOLProjectionHead)
    assert isinstance(module.prediction_head, BYOLPredictionHead)
    assert isinstance(module.teacher_projection_head, BYOLProjectionHead)
    assert isinstance(module.criterion, NegativeCosineSimilarity)
    out = module.forward_student(torch.randn(4, 3, 32, 32))
    assert [tuple(t.shape) for t in out] == [(4, 512), (4, 128), (4, 128)]


def test_pair_loss_is_the_negative_mean_cosine_similarity() -> None:
    g = torch.Generator().manual_seed(0)
    z, p = torch.randn(8, 16, generator=g), torch.randn(8, 16, generator=g)
    expected = -(F.normalize(z, dim=1) * F.normalize(p, dim=1)).sum(1).mean()
    torch.testing.assert_close(make_module("byol").pair_loss(z, p), expected)
