# Mask R-CNN R50-C4 2x on COCO, the MoCo / CorInfoMax fine-tuning protocol (corinfomax).
# Detectron2's coco_R_50_C4_2x_moco.yaml, the config MoCo's detection code ships and the CorInfoMax
# repository runs for its COCO table (and MoCo's R50-C4 2x rows): as the 1x protocol, with 180k
# iterations at total batch 16 and steps at 120k and 160k.
_base_ = "./mask-rcnn_r50-c4_ms-1x_coco.py"

max_iters = 180000
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
# The whole list is replaced (lists do not merge), so both schedulers are restated here.
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
