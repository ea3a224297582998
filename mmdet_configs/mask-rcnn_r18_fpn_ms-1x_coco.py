# Mask R-CNN R18-FPN multi-scale 1x: protocol mmselfsup_fpn with a ResNet-18 (small experiments).
_base_ = "./mask-rcnn_r50_fpn_ms-1x_coco.py"

model = dict(backbone=dict(depth=18), neck=dict(in_channels=[64, 128, 256, 512]))

# ruff: noqa: N999 - mmdet config file names are not module names
