"""Our modules in mmdet's ``MODELS`` registry.

Configs load them with ``custom_imports = dict(imports=['lightly_matrix.mmdet'],
allow_failed_imports=False)``:

- ``ResLayerExtraNorm``: the R50-C4 RoI shared head (res5) with an extra BN after it.
- ``TimmViTSimplePyramid``: a timm ViT with a ViTDet-style simple feature pyramid.
- ``LightlyMatrixLN2d`` (norm layer): timm's ``LayerNorm2d`` at eps 1e-5, for the pyramid and heads.
- ``PretrainedOrDefault`` (weight initializer): an exported backbone when ``checkpoint`` is set,
  random weights otherwise; lets ``--cfg-options model.backbone.init_cfg.checkpoint=FILE`` work.
- ``PreciseBNHook`` (in mmdet's ``HOOKS``): BN statistics recomputed over N training batches
  before evaluation, as Detectron2's ``TEST.PRECISE_BN`` in MoCo's C4 recipe.
- ``ClasswiseCocoMetric`` (``METRICS``): ``CocoMetric`` keeping per-category AP of boxes and masks.
- ``FirstImagesVisualizationHook`` (``HOOKS``): mmdet's visualization hook, first N test images.
"""

from lightly_matrix.mmdet.coco_metric import ClasswiseCocoMetric
from lightly_matrix.mmdet.init import PretrainedOrDefault, pretrained_init_cfg
from lightly_matrix.mmdet.norm import LayerNorm2d
from lightly_matrix.mmdet.precise_bn import PreciseBNHook, recompute_bn_stats
from lightly_matrix.mmdet.res_layer import ResLayerExtraNorm
from lightly_matrix.mmdet.visualization import FirstImagesVisualizationHook
from lightly_matrix.mmdet.vit import TimmViTSimplePyramid

__all__ = [
    "ClasswiseCocoMetric",
    "FirstImagesVisualizationHook",
    "LayerNorm2d",
    "PreciseBNHook",
    "PretrainedOrDefault",
    "ResLayerExtraNorm",
    "TimmViTSimplePyramid",
    "pretrained_init_cfg",
    "recompute_bn_stats",
]
