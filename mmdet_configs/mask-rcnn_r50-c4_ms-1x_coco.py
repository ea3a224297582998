# Mask R-CNN R50-C4 1x on COCO, the MoCo / Matrix-SSL fine-tuning protocol (matrix_ssl, default).
# Comparable to the Mask R-CNN R50-C4 1x COCO tables of MoCo, SimSiam, MEC and Matrix-SSL, all run
# with MoCo's detection code (Detectron2, Base-RCNN-C4-BN, 1x). Detectron2 values matched here:
# 90k iterations at total batch 16 (IterBasedTrainLoop), lr 0.02 with steps at 60k and 80k, linear
# warm-up over 1000 iterations from 0.001, SGD momentum 0.9, weight decay 1e-4 but none on norm
# layers (WEIGHT_DECAY_NORM = 0), precise BN statistics over 200 training batches before
# evaluation (PreciseBNHook), SyncBN everywhere, nothing frozen, a torchvision-style ("pytorch")
# ResNet with RGB ImageNet normalisation, an extra BN after res5 (ResLayerExtraNorm), short side
# 640-800 step 32 for training and 800 for testing, long side at most 1333. What still differs from
# Detectron2 is listed in the README ("COCO protocols"). Random weights unless a checkpoint is set on model.backbone and
# model.roi_head.shared_head (res5 lives in the shared head), as lightly-matrix transfer does, or
# with mmdet's tools/train.py:
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
    # Detectron2's RPN: anchors crossing the image border are kept (BOUNDARY_THRESH -1), and
    # each box's best anchors are positives whatever their IoU (allow_low_quality_matches).
    train_cfg=dict(rpn=dict(allowed_border=-1, assigner=dict(min_pos_iou=0.0))),
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
train_dataloader = dict(
    sampler=dict(type="InfiniteSampler", shuffle=True), dataset=dict(pipeline=train_pipeline)
)

# Detectron2's schedule in iterations at total batch 16; lightly-matrix transfer rescales the
# iterations (and auto_scale_lr the lr) for other total batch sizes, as Detectron2's
# REFERENCE_WORLD_SIZE scaling does.
max_iters = 90000
train_cfg = dict(
    _delete_=True, type="IterBasedTrainLoop", max_iters=max_iters, val_interval=max_iters
)
param_scheduler = [
    dict(type="LinearLR", start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(
        type="MultiStepLR",
        begin=0,
        end=max_iters,
        by_epoch=False,
        milestones=[60000, 80000],
        gamma=0.1,
    ),
]
optim_wrapper = dict(
    optimizer=dict(type="SGD", lr=0.02, momentum=0.9, weight_decay=1e-4),
    paramwise_cfg=dict(norm_decay_mult=0.0),
)
auto_scale_lr = dict(base_batch_size=16)
custom_hooks = [dict(type="PreciseBNHook", num_iters=200)]
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=10000, max_keep_ckpts=2))
log_processor = dict(by_epoch=False)

# ruff: noqa: N999 - mmdet config file names are not module names
