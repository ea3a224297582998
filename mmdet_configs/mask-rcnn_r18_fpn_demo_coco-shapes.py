# Demo: Mask R-CNN R18-FPN on the generated coloured-shapes data (lightly_matrix.data.coco_shapes),
# small enough for a few minutes on 2 CPU cores. Same code path as COCO (CocoDataset, CocoMetric);
# lightly-matrix transfer --demo generates the data and sets data_root. Differences from the
# R18-FPN protocol, all for speed on a CPU: 3 classes, images resized to 128 px, smaller anchors,
# 128-channel FPN and light heads (2fc box head, 2-conv mask head, RoIAlign with 2x2 samples per
# bin), fewer proposals and RoI samples, and a short schedule (3 epochs of 400 images, 150
# iterations). The backbone is the protocol's (BN statistics trained, nothing frozen).
_base_ = "./mask-rcnn_r18_fpn_ms-1x_coco.py"

data_root = "data/coco_shapes/"
classes = ("rectangle", "ellipse", "triangle")
metainfo = dict(classes=classes, palette=[(220, 20, 60), (0, 128, 255), (0, 200, 0)])
max_epochs = 3
batch_size = 8

channels = 128
model = dict(
    neck=dict(out_channels=channels),
    rpn_head=dict(in_channels=channels, feat_channels=channels, anchor_generator=dict(scales=[4])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=channels, roi_layer=dict(sampling_ratio=2)),
        bbox_head=dict(
            _delete_=True,
            type="Shared2FCBBoxHead",
            in_channels=channels,
            fc_out_channels=256,
            roi_feat_size=7,
            num_classes=3,
            bbox_coder=dict(
                type="DeltaXYWHBBoxCoder",
                target_means=[0.0, 0.0, 0.0, 0.0],
                target_stds=[0.1, 0.1, 0.2, 0.2],
            ),
            reg_class_agnostic=False,
            loss_cls=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(type="L1Loss", loss_weight=1.0),
        ),
        mask_roi_extractor=dict(out_channels=channels, roi_layer=dict(sampling_ratio=2)),
        mask_head=dict(
            num_convs=2, in_channels=channels, conv_out_channels=channels, num_classes=3
        ),
    ),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=256), rcnn=dict(sampler=dict(num=64))
    ),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=100), rcnn=dict(max_per_img=20)),
)

train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations", with_bbox=True, with_mask=True),
    dict(type="RandomChoiceResize", scales=[(128, 112), (128, 128), (144, 144)], keep_ratio=True),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PackDetInputs"),
]
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="Resize", scale=(128, 128), keep_ratio=True),
    dict(type="LoadAnnotations", with_bbox=True, with_mask=True),
    dict(
        type="PackDetInputs",
        meta_keys=("img_id", "img_path", "ori_shape", "img_shape", "scale_factor"),
    ),
]
# Worker processes would only compete for the two cores.
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root, metainfo=metainfo, filter_cfg=dict(min_size=0), pipeline=train_pipeline
    ),
)
val_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline),
)
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + "annotations/instances_val2017.json")
test_evaluator = val_evaluator

train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type="LinearLR", start_factor=0.01, by_epoch=False, begin=0, end=25),
    dict(type="MultiStepLR", begin=0, end=max_epochs, by_epoch=True, milestones=[2], gamma=0.1),
]
optim_wrapper = dict(optimizer=dict(lr=0.02))
auto_scale_lr = dict(base_batch_size=batch_size)
default_hooks = dict(
    logger=dict(interval=10), checkpoint=dict(interval=max_epochs, max_keep_ckpts=1)
)

# ruff: noqa: N999 - mmdet config file names are not module names
