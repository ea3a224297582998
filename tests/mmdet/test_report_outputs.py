"""What the transfer test saves for the report: per-category AP of boxes and masks, a few images."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmdet.evaluation.metrics import CocoMetric
from mmdet.visualization import DetLocalVisualizer
from pycocotools.coco import COCO

from lightly_matrix.data.coco_shapes import make_coco_shapes
from lightly_matrix.mmdet import ClasswiseCocoMetric, FirstImagesVisualizationHook

CLASSES = ("rectangle", "ellipse", "triangle")


def ground_truth_predictions(root: Path, empty_masks_of: str) -> list[dict]:
    """Every ground-truth object predicted exactly, but with empty masks for one class."""
    coco = COCO(str(root / "annotations" / "instances_val2017.json"))
    names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    samples = []
    for img_id in coco.getImgIds():
        info = coco.loadImgs(img_id)[0]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
        boxes = [[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2],
                  a["bbox"][1] + a["bbox"][3]] for a in anns]  # fmt: skip
        masks = [
            np.zeros_like(coco.annToMask(a))
            if names[a["category_id"]] == empty_masks_of
            else coco.annToMask(a)
            for a in anns
        ]
        pred = {
            "bboxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "scores": torch.ones(len(anns)),
            "labels": torch.tensor([CLASSES.index(names[a["category_id"]]) for a in anns]),
            "masks": torch.from_numpy(np.stack(masks).astype(bool)),
        }
        shape = (info["height"], info["width"])
        samples.append({"pred_instances": pred, "img_id": img_id, "ori_shape": shape})
    return samples


def evaluate(metric_class: type, root: Path, samples: list[dict]) -> dict[str, float]:
    metric = metric_class(
        ann_file=str(root / "annotations" / "instances_val2017.json"), metric=["bbox", "segm"]
    )
    metric.dataset_meta = {"classes": CLASSES}
    metric.process({}, samples)
    return metric.compute_metrics(metric.results)


def test_classwise_metric_keeps_box_and_mask_ap_per_category(tmp_path: Path) -> None:
    root = make_coco_shapes(tmp_path / "shapes", num_train=1, num_val=6, image_size=64, seed=0)
    samples = ground_truth_predictions(root, empty_masks_of="ellipse")
    ours = evaluate(ClasswiseCocoMetric, root, samples)
    for name in CLASSES:
        assert ours[f"bbox_{name}_precision"] == pytest.approx(1.0)
    assert ours["segm_ellipse_precision"] == pytest.approx(0.0)
    assert ours["segm_rectangle_precision"] > 0.5 and ours["segm_triangle_precision"] > 0.5
    # The summary metrics are mmdet's own.
    stock = evaluate(CocoMetric, root, samples)
    for key in ("bbox_mAP", "bbox_mAP_50", "segm_mAP", "segm_mAP_l"):
        assert ours[key] == stock[key]
    # mmdet's classwise=True names both ``ellipse_precision``: the mask AP overwrote the box AP.
    stock = evaluate(lambda **kw: CocoMetric(classwise=True, **kw), root, samples)
    assert (
        stock["ellipse_precision"] == pytest.approx(0.0) and "bbox_ellipse_precision" not in stock
    )


def test_visualization_hook_draws_only_the_first_images(tmp_path: Path, monkeypatch) -> None:
    calls = []

    def record(self, runner, batch_idx, data_batch, outputs):
        calls.append(len(outputs))

    monkeypatch.setattr("mmdet.engine.hooks.DetVisualizationHook.after_test_iter", record)
    DetLocalVisualizer.get_instance("report_outputs_test")  # the hook uses the current one
    hook = FirstImagesVisualizationHook(max_images=5, draw=True, test_out_dir="vis_test")
    runner = SimpleNamespace(work_dir=str(tmp_path), timestamp="20260101_000000")
    hook.before_test(runner)
    assert hook.test_out_dir == str(tmp_path / "20260101_000000" / "vis_test")
    for batch in range(4):
        hook.after_test_iter(runner, batch, {}, [object()] * 2)
    assert calls == [2, 2, 1]
    with pytest.raises(ValueError, match="max_images"):
        FirstImagesVisualizationHook(max_images=-1)
