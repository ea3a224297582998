"""Our registered mmdet modules: the C4 shared head with extra norm and the ViT pyramid."""

from __future__ import annotations

import pytest
import torch

from lightly_matrix.mmdet import LayerNorm2d, ResLayerExtraNorm, TimmViTSimplePyramid


def test_res_layer_extra_norm_starts_as_res5():
    head = ResLayerExtraNorm(depth=50, stage=3, norm_cfg=dict(type="BN"), norm_eval=False)
    assert not any(k.startswith("bn_extra") for k in head.pretrained_keys())
    assert head.bn_extra.num_features == 2048
    x = torch.randn(2, 1024, 8, 8)
    head.eval()
    res5 = head.layer4(x)
    # A fresh BN in eval mode (mean 0, var 1, weight 1, bias 0) is the identity, up to eps.
    torch.testing.assert_close(head(x), res5 / (1 + head.bn_extra.eps) ** 0.5)


def test_layer_norm_2d_normalises_channels():
    x = torch.randn(2, 8, 3, 5) * 4 + 2
    y = LayerNorm2d(8)(x)
    torch.testing.assert_close(y.mean(1), torch.zeros(2, 3, 5), atol=1e-5, rtol=0)


def test_layer_norm_2d_is_an_mmcv_norm():
    """Registered, so mmdet heads take ``norm_cfg=dict(type='LightlyMatrixLN2d')``."""
    from mmcv.cnn import build_norm_layer
    from mmengine.registry import init_default_scope

    init_default_scope("mmdet")  # as in mmdet configs
    name, norm = build_norm_layer(dict(type="LightlyMatrixLN2d", requires_grad=False), 8)
    assert isinstance(norm, LayerNorm2d) and name == "ln" and norm.normalized_shape == (8,)
    assert not any(p.requires_grad for p in norm.parameters())
    x = torch.randn(2, 8, 3, 5)
    torch.testing.assert_close(norm(x), torch.nn.functional.layer_norm(
        x.permute(0, 2, 3, 1), (8,), eps=norm.eps).permute(0, 3, 1, 2))  # fmt: skip


@pytest.mark.parametrize("patch_size", [16, 8])
def test_vit_pyramid_strides(patch_size):
    model = TimmViTSimplePyramid(
        "vit_tiny_patch16_224", img_size=64, patch_size=patch_size, out_channels=32
    )
    # Any padded detection size works: the position embedding is interpolated.
    outs = model(torch.randn(1, 3, 96, 128))
    assert [tuple(o.shape) for o in outs] == [
        (1, 32, -(-96 // s), -(-128 // s)) for s in (4, 8, 16, 32, 64)
    ]
    assert all(k.startswith("vit.") for k in model.pretrained_keys())
    assert any(k.startswith("pyramid.") for k in model.state_dict())


def test_vit_without_final_norm():
    model = TimmViTSimplePyramid("vit_tiny_patch16_224", img_size=32, final_norm=False)
    assert "vit.norm.weight" not in model.state_dict()


@pytest.mark.parametrize("depth", [18, 50])
def test_pretrained_or_default_without_checkpoint_is_mmdets_default_init(depth):
    """Bit for bit what mmdet's ResNet does with init_cfg=None (same random draws)."""
    from mmdet.models.backbones import ResNet

    weights = []
    for init_cfg in (None, dict(type="PretrainedOrDefault", checkpoint=None)):
        torch.manual_seed(0)
        resnet = ResNet(depth, init_cfg=init_cfg)
        resnet.init_weights()
        weights.append(resnet.state_dict())
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        torch.testing.assert_close(weights[1][key], weights[0][key], rtol=0, atol=0, msg=key)


def test_pretrained_or_default_loads_a_checkpoint(tmp_path):
    from mmdet.models.backbones import ResNet

    source = ResNet(18)
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in source.state_dict().items()}},
               tmp_path / "w.pth")  # fmt: skip
    init_cfg = dict(
        type="PretrainedOrDefault", checkpoint=str(tmp_path / "w.pth"), prefix="backbone."
    )
    resnet = ResNet(18, init_cfg=init_cfg)
    resnet.init_weights()
    for key, value in source.state_dict().items():
        torch.testing.assert_close(resnet.state_dict()[key], value, msg=key)


def test_docstring_examples_run():
    import doctest

    import lightly_matrix.mmdet.resnet

    result = doctest.testmod(lightly_matrix.mmdet.resnet)
    assert result.attempted > 0 and result.failed == 0
