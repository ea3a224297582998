# Mask R-CNN R18-C4 1x: protocol matrix_ssl (the R50-C4 1x recipe) with a ResNet-18.
# For small experiments; published tables are ResNet-50 only.
_base_ = "./mask-rcnn_r50-c4_ms-1x_coco.py"

# BasicBlock: res4 has 256 channels, res5 (the shared head) 512.
model = dict(
    backbone=dict(depth=18),
    rpn_head=dict(in_channels=256, feat_channels=256),
    roi_head=dict(
        shared_head=dict(depth=18),
        bbox_roi_extractor=dict(out_channels=256),
        bbox_head=dict(in_channels=512),
        mask_head=dict(in_channels=512),
    ),
)

# ruff: noqa: N999 - mmdet config file names are not module names
