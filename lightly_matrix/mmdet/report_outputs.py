"""What a test run saves for ``lightly-matrix report``: every category's AP (mmdet's classwise
``CocoMetric`` lets mask APs overwrite box APs) and the first test images drawn (mmdet's
``DetVisualizationHook`` draws all, 5,000 for COCO val2017: minutes)."""

from __future__ import annotations

import os.path as osp
from collections.abc import Sequence
from typing import Any

from mmdet.engine.hooks import DetVisualizationHook
from mmdet.evaluation.metrics import CocoMetric
from mmdet.registry import HOOKS, METRICS
from mmengine.dist import is_main_process


@METRICS.register_module()
class ClasswiseCocoMetric(CocoMetric):
    """mmdet's ``CocoMetric`` with ``classwise=True``, logging per-category AP of every IoU type
    as ``coco/{iou_type}_{category}_precision`` (drawn by ``lightly-matrix report``)."""

    metrics: list[str]

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("classwise", True)
        super().__init__(*args, **kwargs)

    def compute_metrics(self, results: list) -> dict[str, float]:
        """mmdet's metrics for each of ``self.metrics``, per-category keys prefixed by its name."""
        metrics, out = self.metrics, {}
        try:
            for metric in metrics:
                self.metrics = [metric]
                for key, value in super().compute_metrics(results).items():
                    # Only the per-category keys end in _precision (mAP, mAP_50, ... do not).
                    out[f"{metric}_{key}" if key.endswith("_precision") else key] = value
        finally:
            self.metrics = metrics
        return out


@HOOKS.register_module()
class FirstImagesVisualizationHook(DetVisualizationHook):
    """``DetVisualizationHook`` that draws only the first ``max_images`` test images.

    Args:
        max_images: Test images to draw (0: none).
        **kwargs: ``DetVisualizationHook``'s arguments (``draw``, ``test_out_dir``, ...).
    """

    test_out_dir: str | None

    def __init__(self, max_images: int = 6, **kwargs: Any) -> None:
        if max_images < 0:
            raise ValueError(f"max_images must be >= 0, got {max_images}")
        super().__init__(**kwargs)
        self.max_images = max_images
        self._drawn = 0

    def before_test(self, runner: Any) -> None:
        # Absolute once here: mmdet joins work_dir/timestamp onto it at every iteration.
        if self.test_out_dir is not None:
            self.test_out_dir = osp.abspath(
                osp.join(runner.work_dir, runner.timestamp, self.test_out_dir)
            )
        self._drawn = 0

    def after_test_iter(
        self, runner: Any, batch_idx: int, data_batch: dict, outputs: Sequence[Any]
    ) -> None:
        remaining = self.max_images - self._drawn
        if remaining <= 0 or not self.draw or not is_main_process():
            return
        outputs = list(outputs)[:remaining]
        self._drawn += len(outputs)
        super().after_test_iter(runner, batch_idx, data_batch, outputs)
