# Mask R-CNN with a timm ViT-B/16 and a simple feature pyramid (ViTDet style), multi-scale 1x on
# COCO: for M-MAE / MAE encoders. The backbone is our TimmViTSimplePyramid (lightly_matrix.mmdet):
# the ViT's stride-16 map becomes strides 4-64 with 256 channels each, so there is no neck; the
# heads are those of the R50-FPN protocol (SyncBN, 4conv1fc box head, mask head with norm).
# Another ViT: set backbone.model_name/img_size/patch_size (lightly-matrix transfer copies them
# from the exported file's meta). Simplifications against ViTDet: the multi-scale 1x schedule
# instead of 100-epoch large-scale jitter, no window attention, no layer-wise lr decay.
_base_ = "mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py"

custom_imports = dict(imports=["lightly_matrix.mmdet"], allow_failed_imports=False)

norm_cfg = dict(type="SyncBN", requires_grad=True)
model = dict(
    backbone=dict(
        _delete_=True,
        type="TimmViTSimplePyramid",
        model_name="vit_base_patch16_224",
        img_size=224,
        patch_size=16,
        final_norm=True,
        out_channels=256,
        norm_cfg=dict(type="LN2d"),
        drop_path_rate=0.1,
        init_cfg=None,
    ),
    neck=None,
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

# AdamW as for MAE fine-tuning; no weight decay on norms, biases, position embedding, class token.
optim_wrapper = dict(
    _delete_=True,
    type="OptimWrapper",
    optimizer=dict(type="AdamW", lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={"pos_embed": dict(decay_mult=0.0), "cls_token": dict(decay_mult=0.0)},
    ),
    clip_grad=dict(max_norm=1.0, norm_type=2),
)
auto_scale_lr = dict(base_batch_size=16)
default_hooks = dict(checkpoint=dict(max_keep_ckpts=2))
