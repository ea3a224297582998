"""ViTDet for M-MAE / MAE encoders: window attention blocks that hold timm's ViT weights, relative
position tables as the only new ViT parameters, layer-wise lr decay, the LSJ config, and a few
training iterations from an exported MAE checkpoint on generated COCO shapes."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from messages import assert_names
from mmengine.config import Config
from mmengine.registry import init_default_scope
from torch import nn

from lightly_matrix.export import export_backbone, verify_backbone
from lightly_matrix.mmdet import TimmViTSimplePyramid
from lightly_matrix.mmdet.vit import (
    ViTLayerDecayOptimizerConstructor,
    global_block_indexes,
    token_map,
)
from lightly_matrix.transfer.configs import config_dir

VITDET = "mask-rcnn_vit-b16_vitdet_lsj-100e_coco.py"
TINY = dict(model_name="vit_tiny_patch16_224", img_size=64, patch_size=16, out_channels=32)
#: The same ViT as an export's ``backbone_cfg`` (heads keep the config's 256 channels).
TINY_CFG = dict(
    type="TimmViTSimplePyramid", model_name="vit_tiny_patch16_224", img_size=64, patch_size=16
)


def load_config() -> Config:
    return Config.fromfile(str(config_dir() / VITDET))


def build(cfg_model) -> nn.Module:
    from mmdet.registry import MODELS

    init_default_scope("mmdet")
    return MODELS.build(copy.deepcopy(cfg_model))


def pair(**vitdet) -> tuple[TimmViTSimplePyramid, TimmViTSimplePyramid]:
    """A plain ViT backbone and a ViTDet one holding the same pretrained-style weights."""
    torch.manual_seed(0)
    plain = TimmViTSimplePyramid(**TINY).eval()
    det = TimmViTSimplePyramid(**TINY, **vitdet).eval()
    result = det.load_state_dict(plain.state_dict(), strict=False)
    assert set(result.missing_keys) == set(det.new_keys()) and not result.unexpected_keys
    return plain, det


def test_global_blocks_are_the_last_of_each_quarter():
    assert global_block_indexes(12) == (2, 5, 8, 11)  # ViTDet ViT-B
    assert global_block_indexes(24) == (5, 11, 17, 23)  # ViTDet ViT-L
    assert global_block_indexes(32) == (7, 15, 23, 31)  # ViTDet ViT-H
    assert global_block_indexes(6) == (5,)


def test_token_map_is_timms_position_embedding_without_the_class_token():
    plain, det = pair(window_size=2, use_rel_pos=True)
    for size in ((64, 64), (96, 128)):  # the pretraining grid, and an interpolated one
        x = torch.randn(2, 3, *size)
        with torch.no_grad():
            reference = plain.vit._pos_embed(plain.vit.patch_embed(x))[:, 1:]
            tokens = token_map(det.vit, x)
        assert tokens.shape == (2, size[0] // 16, size[1] // 16, 192)
        torch.testing.assert_close(tokens.flatten(1, 2), reference)


def test_one_window_over_the_grid_and_zero_rel_pos_is_timms_vit():
    """With a window covering the whole grid and zero biases, ViTDet's blocks compute what
    timm's own ViT blocks compute on the patch tokens (weights copied, nothing lost)."""
    plain, det = pair(window_size=4, global_attn_indexes=(), use_rel_pos=True, det_img_size=64)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        tokens = token_map(det.vit, x)
        reference = plain.vit.blocks(tokens.flatten(1, 2))
        out = det.vit.blocks(tokens)
    torch.testing.assert_close(out.flatten(1, 2), reference, rtol=1e-4, atol=1e-4)


def test_windows_are_local_and_global_blocks_are_not():
    _, det = pair(window_size=2, use_rel_pos=True, det_img_size=64)
    windowed, global_ = det.vit.blocks[0], det.vit.blocks[2]
    assert windowed.window_size == 2 and global_.window_size == 0
    x = torch.randn(1, 4, 4, 192)
    y = x.clone()
    y[0, 0, 0] += 10.0  # one token of the top-left 2 x 2 window
    with torch.no_grad():
        changed = (windowed(y) != windowed(x)).any(-1)[0]
        changed_global = (global_(y) != global_(x)).any(-1)[0]
    expected = torch.zeros(4, 4, dtype=torch.bool)
    expected[:2, :2] = True
    assert torch.equal(changed, expected)
    assert bool(changed_global.all())


def test_rel_pos_tables_are_the_only_new_vit_parameters():
    _, det = pair(window_size=2, use_rel_pos=True, det_img_size=128)
    new = det.new_keys()
    assert len(new) == 2 * 12 and all(float(det.state_dict()[k].abs().sum()) == 0 for k in new)
    head_dim = 192 // 3
    # Windowed blocks: 2 * window - 1 offsets; global ones: 2 * (128 / 16) - 1.
    assert det.vit.blocks[0].attn.rel_pos_h.shape == (3, head_dim)
    assert det.vit.blocks[11].attn.rel_pos_w.shape == (15, head_dim)
    expected = set(det.pretrained_keys())
    assert not expected & set(new)
    assert {"vit.cls_token", "vit.pos_embed", "vit.norm.weight"} <= expected
    assert expected | set(new) == {k for k in det.state_dict() if k.startswith("vit.")}
    # Loaded but unused by ViTDet: frozen.
    assert not det.vit.cls_token.requires_grad and not det.vit.norm.weight.requires_grad
    # The biases are used: a non-zero table changes the output.
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = det(x)[2]
        det.vit.blocks[0].attn.rel_pos_h.fill_(0.5)
        assert not torch.allclose(det(x)[2], before)


def test_bad_vitdet_settings_are_value_errors():
    with pytest.raises(ValueError) as info:
        TimmViTSimplePyramid(**TINY, window_size=-1)
    assert_names(info, "window_size", "-1")
    with pytest.raises(ValueError) as info:
        TimmViTSimplePyramid(**TINY, window_size=2, global_attn_indexes=(3, 12))
    assert_names(info, "global_attn_indexes", "12", "11")  # the bad index and the last block


def mae_checkpoint(path: Path, image_size: int = 64) -> tuple[Path, nn.Module]:
    """One of our MAE Lightning checkpoints (Lightly's MaskedVisionTransformerTIMM encoder)."""
    from lightly_matrix.methods import METHOD_CLASSES

    torch.manual_seed(0)
    module = METHOD_CLASSES["mmae"](
        backbone="vit_tiny_patch16_224",
        num_classes=0,
        image_size=image_size,
        patch_size=16,
        decoder_dim=32,
        decoder_depth=1,
        decoder_num_heads=2,
    )
    ckpt = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}
    torch.save({**ckpt, "epoch": 0, "pytorch-lightning_version": "2.5.0"}, path)
    return path, module


def tiny_vitdet_config(backbone_cfg: dict, size: int = 128, window: int = 4) -> Config:
    """The ViTDet config with the export's ViT and everything 1024 px shrunk to ``size``."""
    cfg = load_config()
    cfg.model.backbone.update({k: v for k, v in backbone_cfg.items() if k != "type"})
    cfg.model.backbone.update(window_size=window, det_img_size=size)

    def shrink(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if value == (1024, 1024) or value == [1024, 1024]:
                    node[key] = (size, size)
                else:
                    shrink(value)
        elif isinstance(node, list):
            for item in node:
                shrink(item)

    shrink(cfg._cfg_dict)
    return cfg


def test_exported_mae_loads_with_only_rel_pos_new(tmp_path):
    ckpt, module = mae_checkpoint(tmp_path / "mmae.ckpt")
    out = tmp_path / "vit.pth"
    exported = export_backbone(ckpt, out)
    cfg = tiny_vitdet_config(exported.backbone_cfg)
    # The exporter's coverage check against the ViTDet detector (as transfer runs it) passes:
    # nothing missing, nothing unexpected, the rel-pos tables not asked for.
    verify_backbone(exported, cfg.model)
    # Through mmengine's Pretrained init, as lightly-matrix transfer loads it.
    cfg.model.backbone.init_cfg = dict(type="Pretrained", checkpoint=str(out), prefix="backbone.")
    model = build(cfg.model)
    model.init_weights()
    vit, source = model.backbone.vit, module.backbone.vit
    for i in (0, 2, 11):  # windowed and global blocks
        for name in ("attn.qkv.weight", "attn.proj.bias", "mlp.fc2.weight", "norm1.weight"):
            torch.testing.assert_close(
                vit.blocks[i].get_parameter(name), source.blocks[i].get_parameter(name)
            )
    torch.testing.assert_close(vit.pos_embed, source.pos_embed)
    torch.testing.assert_close(vit.patch_embed.proj.weight, source.patch_embed.proj.weight)
    assert all(not vit.blocks[i].attn.rel_pos_h.detach().any() for i in range(12))
    # What the file leaves unset is exactly the new parts: rel-pos tables and the pyramid.
    sd = torch.load(out, weights_only=True)["state_dict"]
    result = model.backbone.load_state_dict(
        {k.removeprefix("backbone."): v for k, v in sd.items()}, strict=False
    )
    assert not result.unexpected_keys
    assert not any("rel_pos" in k for k in model.backbone.pretrained_keys())
    assert set(result.missing_keys) == set(model.backbone.new_keys()) | {
        k for k in model.backbone.state_dict() if k.startswith("pyramid.")
    }


def optimizer_groups(model: nn.Module, **paramwise) -> dict[str, dict]:
    constructor = ViTLayerDecayOptimizerConstructor(
        dict(optimizer=dict(type="AdamW", lr=1e-4, weight_decay=0.1)), paramwise
    )
    optimizer = constructor(model).optimizer
    by_param = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    seen = [id(p) for g in optimizer.param_groups for p in g["params"]]
    assert len(seen) == len(set(seen))  # every parameter in one group only
    return {n: by_param[id(p)] for n, p in model.named_parameters() if id(p) in by_param}


def test_layer_decay_rates_and_weight_decay():
    cfg = tiny_vitdet_config(TINY_CFG)
    model = build(cfg.model)
    groups = optimizer_groups(model, decay_rate=0.7)

    def lr(name):
        return groups[name]["lr"]

    def wd(name):
        return groups[name].get("weight_decay", 0.1)

    # ViTDet: lr * 0.7 ** (13 - layer); patch embedding 0, block i -> i + 1, the rest 13.
    assert lr("backbone.vit.patch_embed.proj.weight") == pytest.approx(1e-4 * 0.7**13)
    assert lr("backbone.vit.pos_embed") == pytest.approx(1e-4 * 0.7**13)
    assert lr("backbone.vit.blocks.0.attn.qkv.weight") == pytest.approx(1e-4 * 0.7**12)
    assert lr("backbone.vit.blocks.5.attn.rel_pos_h") == pytest.approx(1e-4 * 0.7**7)
    assert lr("backbone.vit.blocks.11.mlp.fc2.weight") == pytest.approx(1e-4 * 0.7)
    assert lr("backbone.pyramid.0.0.weight") == pytest.approx(1e-4)
    assert lr("roi_head.bbox_head.fc_cls.weight") == pytest.approx(1e-4)
    assert wd("backbone.vit.blocks.3.attn.qkv.weight") == 0.1
    assert wd("backbone.vit.blocks.3.attn.rel_pos_w") == 0.1
    for name in (
        "backbone.vit.blocks.3.attn.qkv.bias",
        "backbone.vit.blocks.3.norm1.weight",
        "backbone.vit.pos_embed",
        "roi_head.bbox_head.fc_cls.bias",
    ):
        assert wd(name) == 0.0, name
    # Frozen (unused by ViTDet) parameters are not optimised.
    assert "backbone.vit.cls_token" not in groups and "backbone.vit.norm.weight" not in groups
    assert set(groups) == {n for n, p in model.named_parameters() if p.requires_grad}
    # num_layers given explicitly gives the same rates as counted.
    assert optimizer_groups(model, decay_rate=0.7, num_layers=12)[
        "backbone.vit.blocks.0.attn.qkv.weight"
    ]["lr"] == pytest.approx(1e-4 * 0.7**12)


def test_layer_decay_bad_settings():
    model = build(tiny_vitdet_config(TINY_CFG).model)
    with pytest.raises(ValueError) as info:
        optimizer_groups(model, decay_rate=0.7, custom_keys={})
    assert_names(info, "custom_keys")
    with pytest.raises(ValueError) as info:
        optimizer_groups(model, decay_rate=0.0)
    assert_names(info, "decay_rate", "0.0")
    with pytest.raises(ValueError) as info:
        optimizer_groups(nn.Sequential(nn.Linear(2, 2)), decay_rate=0.7)
    assert_names(info, "ViT")


def test_vitdet_config_is_the_papers_recipe():
    cfg = load_config()
    backbone = cfg.model.backbone
    assert backbone.window_size == 14 and backbone.use_rel_pos and backbone.det_img_size == 1024
    assert backbone.drop_path_rate == 0.1 and backbone.norm_cfg == dict(type="LightlyMatrixLN2d")
    assert cfg.model.neck is None and cfg.model.rpn_head.num_convs == 2
    assert cfg.model.roi_head.bbox_head.type == "Shared4Conv1FCBBoxHead"
    assert cfg.model.roi_head.bbox_head.norm_cfg.type == "LightlyMatrixLN2d"
    assert cfg.model.roi_head.mask_head.norm_cfg.type == "LightlyMatrixLN2d"
    model = build(cfg.model)
    windows = [block.window_size for block in model.backbone.vit.blocks]
    assert [i for i, w in enumerate(windows) if w == 0] == [2, 5, 8, 11]
    assert {w for w in windows if w} == {14}
    assert model.backbone.vit.blocks[11].drop_path1.drop_prob == pytest.approx(0.1)
    # Large-scale jitter: resize 0.1-2.0 of 1024, crop to 1024, batches padded to 1024.
    pipeline = cfg.train_dataloader.dataset.dataset.pipeline
    resize = next(t for t in pipeline if t.type == "RandomResize")
    assert resize.scale == (1024, 1024) and resize.ratio_range == (0.1, 2.0)
    crop = next(t for t in pipeline if t.type == "RandomCrop")
    assert crop.crop_size == (1024, 1024) and crop.crop_type == "absolute_range"
    (pad,) = cfg.model.data_preprocessor.batch_augments
    assert pad.type == "BatchFixedSizePad" and pad.size == (1024, 1024)
    test_pad = next(t for t in cfg.test_dataloader.dataset.pipeline if t.type == "Pad")
    assert test_pad.size == (1024, 1024)
    # AdamW 1e-4 at batch 64, weight decay 0.1, layer decay 0.7; 100 epochs, steps at 88 and 96.
    optimizer = cfg.optim_wrapper.optimizer
    assert optimizer.type == "AdamW" and optimizer.lr == 1e-4 and optimizer.weight_decay == 0.1
    assert cfg.optim_wrapper.constructor == "ViTLayerDecayOptimizerConstructor"
    assert cfg.optim_wrapper.paramwise_cfg == dict(decay_rate=0.7)
    assert cfg.auto_scale_lr.base_batch_size == 64
    repeat = cfg.train_dataloader.dataset.times
    assert cfg.train_cfg.max_epochs * repeat == 100
    warmup, steps = cfg.param_scheduler
    assert warmup.type == "LinearLR" and warmup.end == 250 and not warmup.by_epoch
    assert [m * repeat for m in steps.milestones] == [88, 96]


@pytest.mark.slow
def test_exported_mae_trains_and_tests_through_transfer_with_the_vitdet_config(tmp_path):
    """`lightly-matrix transfer --config mask-rcnn_vit-b16_vitdet_lsj-100e_coco` from an M-MAE
    checkpoint: two iterations of ViT-Tiny ViTDet on generated COCO shapes (LSJ at 64 px, window
    2, 64-channel heads for CPU time), then the test pass with its 64 x 64 padding."""
    import argparse
    import json

    from lightly_matrix import transfer
    from lightly_matrix.data.coco_shapes import CATEGORIES, make_coco_shapes

    root = make_coco_shapes(tmp_path / "shapes", num_train=4, num_val=1, image_size=64)
    ckpt, module = mae_checkpoint(tmp_path / "mmae.ckpt")
    classes = "[" + ",".join(CATEGORIES) + "]"
    channels = 64
    options = [
        "default_hooks.visualization.draw=False",
        "model.backbone.window_size=2",
        "model.backbone.det_img_size=64",
        # Large-scale jitter and test padding at 64 px instead of 1024.
        "train_dataloader.dataset.dataset.pipeline.2.scale=(64,64)",
        "train_dataloader.dataset.dataset.pipeline.3.crop_size=(64,64)",
        "model.data_preprocessor.batch_augments.0.size=(64,64)",
        "test_dataloader.dataset.pipeline.1.scale=(64,64)",
        "test_dataloader.dataset.pipeline.2.size=(64,64)",
        f"train_dataloader.dataset.dataset.metainfo.classes={classes}",
        f"test_dataloader.dataset.metainfo.classes={classes}",
        "model.roi_head.bbox_head.num_classes=3",
        "model.roi_head.mask_head.num_classes=3",
        # CPU time: narrower pyramid and heads (same layers), fewer proposals and samples.
        f"model.backbone.out_channels={channels}",
        f"model.rpn_head.in_channels={channels}",
        f"model.rpn_head.feat_channels={channels}",
        f"model.roi_head.bbox_roi_extractor.out_channels={channels}",
        f"model.roi_head.mask_roi_extractor.out_channels={channels}",
        f"model.roi_head.bbox_head.in_channels={channels}",
        f"model.roi_head.bbox_head.conv_out_channels={channels}",
        "model.roi_head.bbox_head.fc_out_channels=256",
        f"model.roi_head.mask_head.in_channels={channels}",
        f"model.roi_head.mask_head.conv_out_channels={channels}",
        "model.train_cfg.rpn_proposal.max_per_img=128",
        "model.train_cfg.rcnn.sampler.num=32",
        "model.test_cfg.rpn.max_per_img=50",
    ]
    parser = argparse.ArgumentParser()
    transfer.add_arguments(parser)
    work_dir = tmp_path / "work"
    argv = [str(ckpt), "--config", Path(VITDET).stem, "--coco-root", str(root)]
    argv += ["--work-dir", str(work_dir), "--max-iters", "2", "--batch-size", "2"]
    args = parser.parse_args([*argv, "--cfg-options", *options])
    assert transfer.run(args) == 0
    results = json.loads((work_dir / "results.json").read_text())
    assert results["method"] == "mmae" and results["architecture"] == "vit_tiny_patch16_224"
    assert set(results["segm"]) >= {"mAP", "AP50", "AP75"}
    trained = torch.load(work_dir / "iter_2.pth", weights_only=False)["state_dict"]
    source = module.backbone.vit
    # Started from the export and moved by two small AdamW steps (lr ~1e-4 * 0.7 ** 8 here).
    qkv = trained["backbone.vit.blocks.4.attn.qkv.weight"]
    assert 0 < float((qkv - source.blocks[4].attn.qkv.weight).abs().max()) < 1e-3
    # The new relative position tables trained; the frozen class token did not.
    assert float(trained["backbone.vit.blocks.2.attn.rel_pos_h"].abs().sum()) > 0
    torch.testing.assert_close(trained["backbone.vit.cls_token"], source.cls_token)


def test_docstring_examples_run():
    import doctest

    import lightly_matrix.mmdet.vit

    result = doctest.testmod(lightly_matrix.mmdet.vit)
    assert result.attempted > 0 and result.failed == 0
