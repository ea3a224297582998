"""Our mmdet configs: they parse, build, follow the published protocols, and load our exports."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from mmengine.config import Config
from mmengine.registry import init_default_scope
from torch import nn

from lightly_matrix.export import export_backbone
from lightly_matrix.transfer.cfg_options import parse_cfg_options
from lightly_matrix.transfer.configs import available_configs, config_dir
from lightly_matrix.transfer.configs_cli import config_text

CONFIG_DIR = config_dir()
CONFIGS = [f"{name}.py" for name in available_configs()]
IMAGENET_RGB = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True)


def load(name: str) -> Config:
    return Config.fromfile(str(CONFIG_DIR / name))


def build_detector(cfg: Config) -> nn.Module:
    from mmdet.registry import MODELS

    init_default_scope("mmdet")
    return MODELS.build(cfg.model)


def test_config_names_follow_mmdet_style():
    assert len(CONFIGS) >= 10
    for name in CONFIGS:
        algorithm, *_, schedule, dataset = Path(name).stem.split("_")
        assert algorithm == "mask-rcnn" and dataset.startswith("coco"), name
        assert schedule in ("ms-1x", "ms-2x", "demo") or "demo" in name, name


@pytest.mark.parametrize("name", CONFIGS)
def test_config_parses_and_builds(name):
    cfg = load(name)
    assert cfg.custom_imports == dict(imports=["lightly_matrix.mmdet"], allow_failed_imports=False)
    # No download: no init_cfg points at torchvision:// or open-mmlab:// weights.
    assert "://" not in cfg.pretty_text.replace("http://", "")
    model = build_detector(cfg)
    assert sum(p.numel() for p in model.parameters()) > 1e6


@pytest.mark.parametrize("size", ["r50", "r18"])
def test_c4_protocol(size):
    for schedule, epochs, milestones in (("1x", 12, [8, 11]), ("2x", 24, [16, 22])):
        cfg = load(f"mask-rcnn_{size}-c4_ms-{schedule}_coco.py")
        backbone, shared = cfg.model.backbone, cfg.model.roi_head.shared_head
        assert backbone.norm_cfg.type == "SyncBN" and shared.norm_cfg.type == "SyncBN"
        assert backbone.frozen_stages == -1
        assert backbone.norm_eval is False and shared.norm_eval is False
        assert backbone.style == "pytorch" and shared.style == "pytorch"
        assert shared.type == "ResLayerExtraNorm"
        preprocessor = cfg.model.data_preprocessor
        assert {k: preprocessor[k] for k in IMAGENET_RGB} == IMAGENET_RGB
        assert cfg.train_cfg.max_epochs == epochs
        (multistep,) = [s for s in cfg.param_scheduler if s.type == "MultiStepLR"]
        assert multistep.milestones == milestones and multistep.end == epochs
        assert cfg.optim_wrapper.optimizer.lr == 0.02 and cfg.auto_scale_lr.base_batch_size == 16
        resize = next(t for t in cfg.train_dataloader.dataset.pipeline if "Resize" in t.type)
        assert {s[1] for s in resize.scales} == {640, 672, 704, 736, 768, 800}
        assert all(s[0] == 1333 for s in resize.scales)
        test_resize = next(t for t in cfg.test_dataloader.dataset.pipeline if t.type == "Resize")
        assert test_resize.scale == (1333, 800)


def test_fpn_protocol():
    for schedule, epochs in (("1x", 12), ("2x", 24)):
        cfg = load(f"mask-rcnn_r50_fpn_ms-{schedule}_coco.py")
        model = cfg.model
        for part in (
            model.backbone,
            model.neck,
            model.roi_head.bbox_head,
            model.roi_head.mask_head,
        ):
            assert part.norm_cfg.type == "SyncBN"
        assert model.roi_head.bbox_head.type == "Shared4Conv1FCBBoxHead"
        assert model.backbone.frozen_stages == -1 and model.backbone.norm_eval is False
        assert cfg.train_cfg.max_epochs == epochs


def test_c4_shared_head_gets_the_extra_norm():
    model = build_detector(load("mask-rcnn_r18-c4_ms-1x_coco.py"))
    shared = model.roi_head.shared_head
    assert shared.norm_name == "bn_extra" and shared.pretrained_keys()[0].startswith("layer4.")
    x = torch.randn(2, 256, 14, 14)
    shared.eval()
    assert shared(x).shape == (2, 512, 7, 7)


def lightly_resnet18() -> nn.Sequential:
    torch.manual_seed(1)
    return nn.Sequential(*list(torchvision.models.resnet18().children())[:-1])


@pytest.mark.parametrize(
    "name", ["mask-rcnn_r18-c4_ms-1x_coco.py", "mask-rcnn_r18_fpn_ms-1x_coco.py"]
)
def test_exported_weights_load_through_init_cfg(tmp_path, name):
    """The exported file goes in through mmengine's Pretrained init and the weights arrive."""
    seq = lightly_resnet18()
    out = tmp_path / "r18.pth"
    cfg = load(name)
    export_backbone(seq, out, model_cfg=cfg.model)
    pretrained = dict(type="Pretrained", checkpoint=str(out), prefix="backbone.")
    cfg.model.backbone.init_cfg = pretrained
    if "shared_head" in cfg.model.roi_head:
        cfg.model.roi_head.shared_head.init_cfg = pretrained
    model = build_detector(cfg)
    model.init_weights()
    torch.testing.assert_close(model.backbone.conv1.weight, seq[0].weight)
    torch.testing.assert_close(
        model.backbone.layer3[1].bn2.running_mean, seq[6][1].bn2.running_mean
    )
    res5 = model.roi_head.shared_head if "c4" in name else model.backbone
    torch.testing.assert_close(res5.layer4[0].downsample[0].weight, seq[7][0].downsample[0].weight)


@pytest.mark.parametrize("how", ["Pretrained", "cfg-options"])
def test_vit_export_loads_into_the_vit_config(tmp_path, how):
    timm = pytest.importorskip("timm")
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=64)
    out = tmp_path / "vit.pth"
    backbone = export_backbone({f"vit.{k}": v for k, v in vit.state_dict().items()}, out)
    cfg = load("mask-rcnn_vit-b16_sfp_ms-1x_coco.py")
    cfg.model.backbone.update({k: v for k, v in backbone.backbone_cfg.items() if k != "type"})
    if how == "Pretrained":
        pretrained = dict(type="Pretrained", checkpoint=str(out), prefix="backbone.")
        cfg.model.backbone.init_cfg = pretrained
    else:  # PretrainedOrDefault loads before timm's own init_weights could run again
        cfg.merge_from_dict(parse_cfg_options([f"model.backbone.init_cfg.checkpoint={out}"]))
    model = build_detector(cfg)
    model.init_weights()
    torch.testing.assert_close(
        model.backbone.vit.blocks[3].attn.qkv.weight, vit.blocks[3].attn.qkv.weight
    )
    torch.testing.assert_close(model.backbone.vit.pos_embed, vit.pos_embed)


@pytest.mark.parametrize("resolved", [False, True], ids=["copy", "resolved"])
@pytest.mark.parametrize(
    "name", ["mask-rcnn_r18-c4_ms-1x_coco.py", "mask-rcnn_r18_fpn_ms-1x_coco.py"]
)
def test_written_out_config_takes_the_export_through_cfg_options(tmp_path, name, resolved):
    """What mmdet's tools/train.py does with `--cfg-options model.backbone.init_cfg.checkpoint`."""
    seq = lightly_resnet18()
    out = tmp_path / "r18.pth"
    export_backbone(seq, out)
    written = tmp_path / "elsewhere" / name
    written.parent.mkdir()
    written.write_text(config_text(CONFIG_DIR / name, resolved=resolved))
    cfg = Config.fromfile(str(written))
    assert ("_base_" in written.read_text()) is not resolved
    options = [f"model.backbone.init_cfg.checkpoint={out}"]
    if "c4" in name:
        options.append(f"model.roi_head.shared_head.init_cfg.checkpoint={out}")
    cfg.merge_from_dict(parse_cfg_options(options))
    model = build_detector(cfg)
    model.init_weights()
    torch.testing.assert_close(model.backbone.conv1.weight, seq[0].weight)
    torch.testing.assert_close(model.backbone.layer2[0].bn1.running_var, seq[5][0].bn1.running_var)
    res5 = model.roi_head.shared_head if "c4" in name else model.backbone
    torch.testing.assert_close(res5.layer4[1].conv2.weight, seq[7][1].conv2.weight)


def test_configs_without_a_checkpoint_train_from_mmdets_default_init():
    cfg = load("mask-rcnn_r18-c4_ms-1x_coco.py")
    assert cfg.model.backbone.init_cfg == dict(
        type="PretrainedOrDefault", checkpoint=None, prefix="backbone."
    )
    model = build_detector(cfg)
    model.init_weights()
    # mmdet's ResNet default: unit BN weights, but zero-initialised last BN of each block.
    assert torch.all(model.backbone.bn1.weight == 1)
    assert torch.all(model.backbone.layer1[0].bn2.weight == 0)
    assert torch.all(model.roi_head.shared_head.layer4[0].bn1.weight == 1)
