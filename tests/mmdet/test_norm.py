"""Our LayerNorm2d: timm's implementation at eps 1e-5, under a name of its own in mmdet's
registry, so it coexists with mmdet's ViTDet project (which registers ``LN2d``)."""

from __future__ import annotations

import copy

import timm.layers
import torch
from mmcv.cnn import build_norm_layer
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import init_default_scope
from torch import nn

from lightly_matrix.mmdet import TimmViTSimplePyramid
from lightly_matrix.mmdet.vit import LN2D, LayerNorm2d
from lightly_matrix.transfer.configs import config_dir


class _OtherLN2d(nn.Module):
    """Stands for mmdet's projects/ViTDet ``LN2d`` (its own class, its own eps)."""

    def __init__(self, normalized_shape: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(normalized_shape))
        self.eps = eps


def _built(type_name: str) -> nn.Module:
    init_default_scope("mmdet")  # as mmdet's configs do
    return build_norm_layer(dict(type=type_name), 8)[1]


def test_is_timms_layer_norm_2d_at_eps_1e_5():
    norm = _built(LN2D)
    assert isinstance(norm, LayerNorm2d) and isinstance(norm, timm.layers.LayerNorm2d)
    assert norm.eps == 1e-5 and LayerNorm2d(8).eps == 1e-5
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    x = torch.randn(2, 8, 3, 5) * 3 + 1
    # nn.LayerNorm (eps 1e-5) over the channels of each position.
    mean = x.mean(1, keepdim=True)
    var = x.var(1, unbiased=False, keepdim=True)
    reference = (x - mean) / torch.sqrt(var + 1e-5) * norm.weight.view(1, -1, 1, 1)
    torch.testing.assert_close(norm(x), reference + norm.bias.view(1, -1, 1, 1))


def test_mmdets_vitdet_ln2d_registers_beside_ours():
    """We leave ``LN2d`` to mmdet's ViTDet project, whichever is imported first."""
    assert "LN2d" not in MODELS.module_dict and "LN2d" not in ROOT_MODELS.module_dict
    MODELS.register_module(module=_OtherLN2d, name="LN2d")
    try:
        assert isinstance(_built("LN2d"), _OtherLN2d)
        assert isinstance(_built(LN2D), LayerNorm2d)
        backbone = TimmViTSimplePyramid("vit_tiny_patch16_224", img_size=32, out_channels=16)
        norms = [m for m in backbone.pyramid.modules() if isinstance(m, nn.LayerNorm)]
        assert norms and all(type(m) is LayerNorm2d and m.eps == 1e-5 for m in norms)
    finally:
        del MODELS._module_dict["LN2d"]


def test_the_vitdet_config_builds_our_norm_in_pyramid_and_heads():
    cfg = Config.fromfile(str(config_dir() / "mask-rcnn_vit-b16_vitdet_lsj-100e_coco.py"))
    cfg.model.backbone.update(
        model_name="vit_tiny_patch16_224", img_size=64, det_img_size=128, window_size=4
    )
    init_default_scope("mmdet")
    model = MODELS.build(copy.deepcopy(cfg.model))
    norms = {name: m for name, m in model.named_modules() if isinstance(m, nn.LayerNorm)}
    pyramid_and_heads = {n: m for n, m in norms.items() if not n.startswith("backbone.vit.")}
    where = [n.split(".")[1] for n in pyramid_and_heads]
    # ViTDet's pyramid (3 + 2 + 2 + 2 at strides 4-32) and the 4 convs of each head.
    assert {w: where.count(w) for w in set(where)} == {"pyramid": 9, "bbox_head": 4, "mask_head": 4}
    assert all(type(m) is LayerNorm2d and m.eps == 1e-5 for m in pyramid_and_heads.values())
