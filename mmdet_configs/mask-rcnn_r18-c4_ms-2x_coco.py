# Mask R-CNN R18-C4 2x: protocol corinfomax (the R50-C4 2x recipe) with a ResNet-18.
# For small experiments; published tables are ResNet-50 only.
_base_ = "./mask-rcnn_r18-c4_ms-1x_coco.py"

max_iters = 180000
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type="LinearLR", start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(
        type="MultiStepLR",
        begin=0,
        end=max_iters,
        by_epoch=False,
        milestones=[120000, 160000],
        gamma=0.1,
    ),
]

# ruff: noqa: N999 - mmdet config file names are not module names
