# Mask R-CNN R50-FPN multi-scale 2x: the mmselfsup_fpn protocol for 24 epochs (steps at 16, 22).
_base_ = "./mask-rcnn_r50_fpn_ms-1x_coco.py"

train_cfg = dict(max_epochs=24)
param_scheduler = [
    dict(type="LinearLR", start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type="MultiStepLR", begin=0, end=24, by_epoch=True, milestones=[16, 22], gamma=0.1),
]

# ruff: noqa: N999 - mmdet config file names are not module names
