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
from lightly_matrix.transfer.configs import available_configs, config_dir, config_text

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
        assert schedule in ("ms-1x", "ms-2x", "lsj-100e", "demo") or "demo" in name, name


@pytest.mark.parametrize("name", CONFIGS)
def test_config_parses_and_builds(name):
    cfg = load(name)
    assert cfg.custom_imports == dict(imports=["lightly_matrix.mmdet"], allow_failed_imports=False)
    # No download: no init_cfg points at torchvision:// or open-mmlab:// weights.
    assert "://" not in cfg.pretty_text.replace("http://", "")
    model = build_detector(cfg)
    assert sum(p.numel() for p in model.parameters()) > 1e6


# MoCo's detection code (facebookresearch/moco detection/configs: Base-RCNN-C4-BN.yaml,
# coco_R_50_C4_2x.yaml, coco_R_50_C4_2x_moco.yaml) on Detectron2's defaults (config/defaults.py),
# written out here independently of our configs. 1x: Detectron2's 90k schedule.
DETECTRON2_MOCO = dict(
    base_lr=0.02,  # SOLVER.BASE_LR at SOLVER.IMS_PER_BATCH 16
    batch=16,
    momentum=0.9,  # SOLVER.MOMENTUM
    weight_decay=1e-4,  # SOLVER.WEIGHT_DECAY (and WEIGHT_DECAY_BIAS)
    weight_decay_norm=0.0,  # SOLVER.WEIGHT_DECAY_NORM
    warmup_iters=1000,  # SOLVER.WARMUP_ITERS
    warmup_factor=1.0 / 1000,  # SOLVER.WARMUP_FACTOR, WARMUP_METHOD "linear"
    gamma=0.1,  # SOLVER.GAMMA
    min_size_train=(640, 672, 704, 736, 768, 800),  # INPUT.MIN_SIZE_TRAIN, sampling "choice"
    min_size_test=800,
    max_size=1333,  # INPUT.MAX_SIZE_TRAIN / MAX_SIZE_TEST
    precise_bn_iters=200,  # TEST.PRECISE_BN.NUM_ITER (ENABLED in Base-RCNN-C4-BN)
    rpn_test=(6000, 1000),  # RPN.PRE_NMS_TOPK_TEST / POST_NMS_TOPK_TEST
    rpn_train=(12000, 2000),  # RPN.PRE_NMS_TOPK_TRAIN / POST_NMS_TOPK_TRAIN
    rpn_boundary_thresh=-1,  # RPN.BOUNDARY_THRESH: no anchor pruning at the border
    rpn_iou_thresholds=(0.3, 0.7),  # RPN.IOU_THRESHOLDS, allow_low_quality_matches
    rois_per_image=512,  # ROI_HEADS.BATCH_SIZE_PER_IMAGE
    positive_fraction=0.25,
    schedules={"1x": (90000, [60000, 80000]), "2x": (180000, [120000, 160000])},
)


@pytest.mark.parametrize("schedule", ["1x", "2x"])
@pytest.mark.parametrize("size", ["r50", "r18"])
def test_c4_protocol_is_detectron2s_moco_recipe(size, schedule):
    ref = DETECTRON2_MOCO
    cfg = load(f"mask-rcnn_{size}-c4_ms-{schedule}_coco.py")
    backbone, shared = cfg.model.backbone, cfg.model.roi_head.shared_head
    assert backbone.norm_cfg.type == "SyncBN" and shared.norm_cfg.type == "SyncBN"
    assert backbone.frozen_stages == -1  # BACKBONE.FREEZE_AT 0
    assert backbone.norm_eval is False and shared.norm_eval is False
    assert backbone.style == "pytorch" and shared.style == "pytorch"  # STRIDE_IN_1X1 False
    assert shared.type == "ResLayerExtraNorm"  # Res5ROIHeadsExtraNorm
    preprocessor = cfg.model.data_preprocessor
    assert {k: preprocessor[k] for k in IMAGENET_RGB} == IMAGENET_RGB  # PIXEL_MEAN/STD, RGB

    # Schedule: iterations, exactly Detectron2's.
    max_iters, steps = ref["schedules"][schedule]
    assert cfg.train_cfg == dict(
        type="IterBasedTrainLoop", max_iters=max_iters, val_interval=max_iters
    )
    assert cfg.train_dataloader.sampler.type == "InfiniteSampler"
    warmup, multistep = cfg.param_scheduler
    assert (warmup.type, warmup.by_epoch, warmup.begin, warmup.end) == (
        "LinearLR",
        False,
        0,
        ref["warmup_iters"],
    )
    assert warmup.start_factor == pytest.approx(ref["warmup_factor"])
    assert warmup.get("end_factor", 1.0) == 1.0
    assert (multistep.type, multistep.by_epoch, multistep.end) == ("MultiStepLR", False, max_iters)
    assert multistep.milestones == steps and multistep.gamma == ref["gamma"]
    assert cfg.log_processor.by_epoch is False and cfg.default_hooks.checkpoint.by_epoch is False

    # Optimiser: SGD, lr 0.02 at batch 16, no weight decay on norm layers.
    optimizer = cfg.optim_wrapper.optimizer
    assert optimizer.type == "SGD" and optimizer.lr == ref["base_lr"]
    assert optimizer.momentum == ref["momentum"] and optimizer.weight_decay == ref["weight_decay"]
    assert cfg.optim_wrapper.paramwise_cfg.norm_decay_mult == ref["weight_decay_norm"]
    assert cfg.auto_scale_lr.base_batch_size == ref["batch"]
    assert cfg.train_dataloader.batch_size * 8 == ref["batch"]  # 8 GPUs x 2, mmdet's convention

    # Precise BN before evaluation.
    assert cfg.custom_hooks == [dict(type="PreciseBNHook", num_iters=ref["precise_bn_iters"])]

    # Input sizes: short side chosen from 640..800 (step 32), long side at most 1333; test 800.
    resize = next(t for t in cfg.train_dataloader.dataset.pipeline if "Resize" in t.type)
    assert resize.type == "RandomChoiceResize" and resize.keep_ratio
    assert tuple(sorted(s[1] for s in resize.scales)) == ref["min_size_train"]
    assert all(s[0] == ref["max_size"] for s in resize.scales)
    test_resize = next(t for t in cfg.test_dataloader.dataset.pipeline if t.type == "Resize")
    assert test_resize.scale == (ref["max_size"], ref["min_size_test"]) and test_resize.keep_ratio

    # RPN and RoI sampling as Detectron2's C4 defaults.
    rpn_test, rpn_train = cfg.model.test_cfg.rpn, cfg.model.train_cfg.rpn_proposal
    assert (rpn_test.nms_pre, rpn_test.max_per_img) == ref["rpn_test"]
    assert (rpn_train.nms_pre, rpn_train.max_per_img) == ref["rpn_train"]
    sampler = cfg.model.train_cfg.rcnn.sampler
    assert (sampler.num, sampler.pos_fraction) == (ref["rois_per_image"], ref["positive_fraction"])
    rpn = cfg.model.train_cfg.rpn
    assert rpn.allowed_border == ref["rpn_boundary_thresh"]
    assert (rpn.assigner.neg_iou_thr, rpn.assigner.pos_iou_thr) == ref["rpn_iou_thresholds"]
    assert rpn.assigner.match_low_quality and rpn.assigner.min_pos_iou == 0.0


def test_c4_optimizer_decays_no_norm_parameter():
    """Built as mmengine builds it: norm weights and biases get weight decay 0, the rest 1e-4."""
    from mmengine.optim import build_optim_wrapper

    cfg = load("mask-rcnn_r18-c4_ms-1x_coco.py")
    model = build_detector(cfg)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    decay = {id(p): g["weight_decay"] for g in wrapper.optimizer.param_groups for p in g["params"]}
    norms = (nn.BatchNorm2d, nn.SyncBatchNorm)
    seen = {"norm": 0, "other": 0}
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            is_norm = isinstance(module, norms)
            expected = DETECTRON2_MOCO["weight_decay_norm" if is_norm else "weight_decay"]
            assert decay[id(param)] == expected, (module, name)
            seen["norm" if is_norm else "other"] += 1
    assert seen["norm"] > 40 and seen["other"] > 20
    assert model.roi_head.shared_head.bn_extra.weight.requires_grad


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
        # mmselfsup 1.x's benchmark config as it stands: mmdet's schedule, norm layers decayed,
        # no precise BN (kept so, to stay comparable with mmselfsup's model-zoo rows).
        warmup, steps = cfg.param_scheduler
        assert (warmup.type, warmup.end, warmup.by_epoch) == ("LinearLR", 500, False)
        assert steps.milestones == ([8, 11] if schedule == "1x" else [16, 22])
        optimizer = cfg.optim_wrapper.optimizer
        assert (optimizer.lr, optimizer.momentum, optimizer.weight_decay) == (0.02, 0.9, 1e-4)
        assert "paramwise_cfg" not in cfg.optim_wrapper and not cfg.get("custom_hooks")


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
    weights = {f"vit.{k}": v for k, v in vit.state_dict().items()}
    backbone = export_backbone(weights, out, arch="vit_tiny_patch16_224")
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
