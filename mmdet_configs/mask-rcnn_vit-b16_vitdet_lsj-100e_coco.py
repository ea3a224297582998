# Mask R-CNN ViTDet with a ViT-B/16 (MAE / M-MAE encoders), large-scale jitter 100 epochs on COCO.
# The ViTDet recipe (Li et al. 2022, "Exploring Plain Vision Transformer Backbones for Object
# Detection"): window attention (14 x 14) with global attention in blocks 2, 5, 8, 11, relative
# position biases (new, zero-initialised) plus the interpolated absolute position embedding, a
# simple feature pyramid with LayerNorm, 2-conv RPN, 4conv1fc box head and mask head with
# LayerNorm, AdamW lr 1e-4 (batch 64) with weight decay 0.1 and layer-wise lr decay 0.7, drop
# path 0.1, large-scale jitter at 1024 px (scale 0.1-2.0, crop and pad to 1024), 100 epochs with
# lr steps at epochs 88 and 96 (mmdet's lsj-100e: 25 epochs over the data repeated 4 times),
# 250 warm-up iterations. Published with MAE ViT-B: 51.6 box AP / 45.7 mask AP (mmdet's ViTDet).
# Our backbone (lightly_matrix.mmdet) loads lightly-matrix export files of a timm ViT; set
# backbone.model_name/img_size/patch_size for another one (lightly-matrix transfer copies them from
# the export). Mixed precision as in ViTDet: mmdet's tools/train.py --amp.
_base_ = "mmdet::strong_baselines/mask-rcnn_r50_fpn_rpn-2conv_4conv1fc_syncbn-all_lsj-100e_coco.py"

custom_imports = dict(imports=["lightly_matrix.mmdet"], allow_failed_imports=False)

image_size = (1024, 1024)
head_norm_cfg = dict(type="LightlyMatrixLN2d", requires_grad=True)
model = dict(
    backbone=dict(
        _delete_=True,
        type="TimmViTSimplePyramid",
        model_name="vit_base_patch16_224",
        img_size=224,
        patch_size=16,
        final_norm=True,
        out_channels=256,
        norm_cfg=dict(type="LightlyMatrixLN2d"),
        drop_path_rate=0.1,
        window_size=14,
        # None: the last block of each quarter, (2, 5, 8, 11) for ViT-B's 12 blocks.
        global_attn_indexes=None,
        use_rel_pos=True,
        det_img_size=image_size[0],
        init_cfg=dict(type="PretrainedOrDefault", checkpoint=None, prefix="backbone."),
    ),
    neck=None,
    roi_head=dict(
        bbox_head=dict(norm_cfg=head_norm_cfg),
        mask_head=dict(norm_cfg=head_norm_cfg),
    ),
)

# Test as ViTDet: longest side 1024, padded to 1024 x 1024 like the training crops (so the global
# blocks' relative position tables see the grid they were trained on). The padding is the mean
# colour (BGR), i.e. 0 after normalisation, as BatchFixedSizePad gives the training batches.
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="Resize", scale=image_size, keep_ratio=True),
    dict(type="Pad", size=image_size, pad_val=dict(img=(103.53, 116.28, 123.675))),
    dict(type="LoadAnnotations", with_bbox=True, with_mask=True),
    dict(
        type="PackDetInputs",
        meta_keys=("img_id", "img_path", "ori_shape", "img_shape", "scale_factor"),
    ),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(
    _delete_=True,
    type="OptimWrapper",
    constructor="ViTLayerDecayOptimizerConstructor",
    optimizer=dict(type="AdamW", lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1),
    paramwise_cfg=dict(decay_rate=0.7),
)

max_epochs = 25  # x 4 (RepeatDataset) = 100 epochs
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type="LinearLR", start_factor=0.001, by_epoch=False, begin=0, end=250),
    dict(
        type="MultiStepLR",
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[22, 24],
        gamma=0.1,
    ),
]
# lr 1e-4 is for a total batch of 64 (e.g. 8 GPUs x 8 images); other batches scale it linearly.
auto_scale_lr = dict(base_batch_size=64)

# ruff: noqa: N999 - mmdet config file names are not module names
