# Mask R-CNN with a timm ViT-B/16 and a simple feature pyramid (ViTDet style), multi-scale 1x on
# COCO: for M-MAE / MAE encoders. The backbone is our TimmViTSimplePyramid (lightly_matrix.mmdet):
# the ViT's stride-16 map becomes strides 4-64 with 256 channels each, so there is no neck; heads,
# multi-scale pipeline and schedule are those of the R50-FPN protocol config this inherits.
# Another ViT: set backbone.model_name/img_size/patch_size (lightly-matrix transfer copies them
# from the exported file's meta). Simplifications against ViTDet: the multi-scale 1x schedule
# instead of 100-epoch large-scale jitter, no window attention, no layer-wise lr decay; the full
# ViTDet recipe is mask-rcnn_vit-b16_vitdet_lsj-100e_coco.
_base_ = "./mask-rcnn_r50_fpn_ms-1x_coco.py"

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
        init_cfg=dict(type="PretrainedOrDefault", checkpoint=None, prefix="backbone."),
    ),
    neck=None,
)

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

# ruff: noqa: N999 - mmdet config file names are not module names
