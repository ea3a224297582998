"""Our modules in mmdet's registries, loaded by configs with
``custom_imports = dict(imports=['lightly_matrix.mmdet'], allow_failed_imports=False)``."""

from lightly_matrix.mmdet.coco_metric import ClasswiseCocoMetric
from lightly_matrix.mmdet.init import PretrainedOrDefault
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
    "recompute_bn_stats",
]
