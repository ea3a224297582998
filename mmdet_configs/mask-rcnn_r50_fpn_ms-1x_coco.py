# Mask R-CNN R50-FPN multi-scale 1x on COCO, the mmselfsup model-zoo fine-tuning protocol (mmselfsup_fpn).
# Comparable to the COCO2017 rows of mmselfsup 0.x's model zoo (its mask_rcnn_r50_fpn_mstrain_1x
# config; those runs warmed up over 1000 iterations, mmselfsup 1.x's config and this one over 500).
# Differences from mmdet's R50-FPN 1x: SyncBN in backbone, neck and heads (4conv1fc box head and
# mask head with norm), nothing frozen, BN statistics trained, multi-scale training (short side
# 640-800), and no torchvision:// download: random weights unless a checkpoint is set, as
# lightly-matrix transfer does, or with mmdet's tools/train.py:
#   --cfg-options model.backbone.init_cfg.checkpoint=backbone.pth
_base_ = "mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py"

custom_imports = dict(imports=["lightly_matrix.mmdet"], allow_failed_imports=False)

norm_cfg = dict(type="SyncBN", requires_grad=True)
model = dict(
    backbone=dict(
        frozen_stages=-1,
        norm_cfg=norm_cfg,
        norm_eval=False,
        # PretrainedOrDefault (lightly_matrix.mmdet): mmdet's default random init while None.
        init_cfg=dict(type="PretrainedOrDefault", checkpoint=None, prefix="backbone."),
    ),
    neck=dict(norm_cfg=norm_cfg),
    roi_head=dict(
        bbox_head=dict(type="Shared4Conv1FCBBoxHead", conv_out_channels=256, norm_cfg=norm_cfg),
        mask_head=dict(norm_cfg=norm_cfg),
    ),
)

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

# 1x = 12 epochs at total batch 16 (lr 0.02, steps at 8 and 11), inherited from schedule_1x.
auto_scale_lr = dict(base_batch_size=16)
default_hooks = dict(checkpoint=dict(max_keep_ckpts=2))

# ruff: noqa: N999 - mmdet config file names are not module names
