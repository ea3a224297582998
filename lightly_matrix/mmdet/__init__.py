"""Our modules in mmdet's ``MODELS`` registry.

Configs load them with ``custom_imports = dict(imports=['lightly_matrix.mmdet'],
allow_failed_imports=False)``:

- ``ResLayerExtraNorm``: the R50-C4 RoI shared head (res5) with an extra BN after it.
- ``TimmViTSimplePyramid``: a timm ViT with a ViTDet-style simple feature pyramid.
"""

from lightly_matrix.mmdet.res_layer import ResLayerExtraNorm
from lightly_matrix.mmdet.vit import LayerNorm2d, TimmViTSimplePyramid

__all__ = ["LayerNorm2d", "ResLayerExtraNorm", "TimmViTSimplePyramid"]
