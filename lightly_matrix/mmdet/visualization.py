"""The first few test images drawn by mmdet's ``DetVisualizationHook``, for the run report.

mmdet's hook draws every test image (5,000 for COCO val2017, minutes); this one stops early.
"""

from __future__ import annotations

import os.path as osp
from collections.abc import Sequence
from typing import Any

from mmdet.engine.hooks import DetVisualizationHook
from mmdet.registry import HOOKS
from mmengine.dist import is_main_process


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
