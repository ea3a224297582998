# Mask R-CNN R50-C4, multi-scale 1x on COCO: the MoCo / Matrix-SSL fine-tuning protocol.
# Differences from mmdet's caffe-style C4 config: a torchvision-style ("pytorch") ResNet with
# RGB ImageNet normalisation, SyncBN everywhere, nothing frozen, BN statistics trained, an extra
# BN after res5 (ResLayerExtraNorm), multi-scale training (short side 640-800) and no download:
# random weights unless a checkpoint is set on model.backbone and model.roi_head.shared_head (res5
# lives in the shared head), as lightly-matrix transfer does, or with mmdet's tools/train.py:
#   --cfg-options model.backbone.init_cfg.checkpoint=backbone.pth
#                 model.roi_head.shared_head.init_cfg.checkpoint=backbone.pth
_base_ = "mmdet::mask_rcnn/mask-rcnn_r50-caffe-c4_1x_coco.py"

custom_imports = dict(imports=["lightly_matrix.mmdet"], allow_failed_imports=False)

norm_cfg = dict(type="SyncBN", requires_grad=True)
# PretrainedOrDefault (lightly_matrix.mmdet): mmdet's default random init while checkpoint=None.
backbone_init = dict(type="PretrainedOrDefault", checkpoint=None, prefix="backbone.")
model = dict(
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True
    ),
    backbone=dict(
        frozen_stages=-1,
        norm_cfg=norm_cfg,
        norm_eval=False,
        style="pytorch",
        init_cfg=backbone_init,
    ),
    roi_head=dict(
        shared_head=dict(
            type="ResLayerExtraNorm",
            norm_cfg=norm_cfg,
            norm_eval=False,
            style="pytorch",
            init_cfg=backbone_init,
        )
    ),
)

# Detectron2's ResizeShortestEdge((640, ..., 800), max_size=1333); test at 800 (inherited).
train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations", with_bbox=True, with_mask=True),
    dict(
        type="RandomChoiceResize",
        scales=[(1333, 640), (1333, 672), (1333, 704), (1333, 736), (1333, 768), (1333, 800)],
        keep_ratio=True,
    ),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PackDetInputs"),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

# 1x = 12 epochs at total batch 16 (lr 0.02, steps at 8 and 11), inherited from schedule_1x;
# lightly-matrix transfer enables auto_scale_lr for other total batch sizes.
auto_scale_lr = dict(base_batch_size=16)
default_hooks = dict(checkpoint=dict(max_keep_ckpts=2))

# ruff: noqa: N999 - mmdet config file names are not module names
