from __future__ import annotations

import pytest
import torch
from lightly.models.modules.heads import ProjectionHead
from torch import nn

from lightly_matrix.models.modules import (
    CorInfoMaxProjectionHead,
    MatrixSSLPredictionHead,
    MatrixSSLProjectionHead,
)


def _linears(head: nn.Module) -> list[nn.Linear]:
    return [m for m in head.modules() if isinstance(m, nn.Linear)]


def test_matrix_ssl_projection_head_is_the_papers() -> None:
    head = MatrixSSLProjectionHead()
    assert isinstance(head, ProjectionHead)
    lin = _linears(head)
    assert [(layer.in_features, layer.out_features) for layer in lin] == [(2048, 2048)] * 3
    assert [layer.bias is not None for layer in lin] == [False, False, True]
    # Frozen as the authors freeze it (mec/builder.py): 7 trainable tensors, not 8.
    assert not lin[-1].bias.requires_grad
    assert sum(p.requires_grad for p in head.parameters()) == 7
    last = head.layers[-1]
    assert isinstance(last, nn.BatchNorm1d) and not last.affine
    assert head(torch.randn(4, 2048)).shape == (4, 2048)


def test_matrix_ssl_prediction_head_is_the_papers() -> None:
    head = MatrixSSLPredictionHead()
    lin = _linears(head)
    assert [(layer.in_features, layer.out_features) for layer in lin] == [(2048, 512), (512, 2048)]
    assert [layer.bias is not None for layer in lin] == [False, True]
    assert isinstance(head.layers[1], nn.BatchNorm1d)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_corinfomax_head(batch_norm) -> None:
    head = CorInfoMaxProjectionHead(512, 2048, 64, batch_norm=batch_norm)
    lin = _linears(head)
    assert [(layer.in_features, layer.out_features) for layer in lin] == [
        (512, 2048),
        (2048, 2048),
        (2048, 64),
    ]
    assert lin[-1].bias is None  # last Linear without bias
    # Hidden layers keep their bias, also before BN (the authors' imagenet1k model).
    assert all(layer.bias is not None for layer in lin[:-1])
    n_bn = sum(isinstance(m, nn.BatchNorm1d) for m in head.modules())
    assert n_bn == (2 if batch_norm else 0)
    assert head(torch.randn(3, 512)).shape == (3, 64)


def test_heads_reject_bad_sizes() -> None:
    with pytest.raises(ValueError, match="output_dim"):
        MatrixSSLProjectionHead(output_dim=0)
    with pytest.raises(ValueError, match="num_layers"):
        CorInfoMaxProjectionHead(num_layers=0)
