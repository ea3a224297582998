"""Our modules in mmdet's registries, loaded by configs with
``custom_imports = dict(imports=['lightly_matrix.mmdet'], allow_failed_imports=False)``."""

from lightly_matrix.mmdet.precise_bn import PreciseBNHook, recompute_bn_stats
from lightly_matrix.mmdet.report_outputs import ClasswiseCocoMetric, FirstImagesVisualizationHook
from lightly_matrix.mmdet.resnet import PretrainedOrDefault, ResLayerExtraNorm
from lightly_matrix.mmdet.vit import (
    LayerNorm2d,
    TimmViTSimplePyramid,
    ViTLayerDecayOptimizerConstructor,
)

__all__ = [
    "ClasswiseCocoMetric",
    "FirstImagesVisualizationHook",
    "LayerNorm2d",
    "PreciseBNHook",
    "PretrainedOrDefault",
    "ResLayerExtraNorm",
    "TimmViTSimplePyramid",
    "ViTLayerDecayOptimizerConstructor",
    "recompute_bn_stats",
]
