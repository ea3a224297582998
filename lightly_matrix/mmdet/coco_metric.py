"""COCO evaluation that keeps the AP of every category for boxes and for masks.

mmdet's ``CocoMetric(classwise=True)`` lets the mask APs overwrite the box APs of a category;
this one logs ``coco/{iou_type}_{category}_precision``, which ``lightly-matrix report`` draws.
"""

from __future__ import annotations

from collections import OrderedDict

from mmdet.evaluation.metrics import CocoMetric
from mmdet.registry import METRICS


@METRICS.register_module()
class ClasswiseCocoMetric(CocoMetric):
    """mmdet's ``CocoMetric`` with ``classwise=True``, per-category AP kept per IoU type."""

    metrics: list[str]

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("classwise", True)
        super().__init__(*args, **kwargs)

    def compute_metrics(self, results: list) -> dict[str, float]:
        """mmdet's metrics for each of ``self.metrics``, per-category keys prefixed by its name."""
        metrics, out = self.metrics, OrderedDict()
        try:
            for metric in metrics:
                self.metrics = [metric]
                for key, value in super().compute_metrics(results).items():
                    # Only the per-category keys end in _precision (mAP, mAP_50, ... do not).
                    out[f"{metric}_{key}" if key.endswith("_precision") else key] = value
        finally:
            self.metrics = metrics
        return out
