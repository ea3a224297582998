# Mask R-CNN R18-FPN multi-scale 2x: the R50-FPN 2x config with a ResNet-18.
_base_ = "./mask-rcnn_r18_fpn_ms-1x_coco.py"

train_cfg = dict(max_epochs=24)
param_scheduler = [
    dict(type="LinearLR", start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type="MultiStepLR", begin=0, end=24, by_epoch=True, milestones=[16, 22], gamma=0.1),
]

# ruff: noqa: N999 - mmdet config file names are not module names
