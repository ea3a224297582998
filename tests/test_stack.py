"""The installed stack works: mmcv's compiled ops, mmdet's Mask R-CNN, pycocotools' COCOeval."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import numpy as np
import pytest
import torch


def test_mmcv_compiled_nms() -> None:
    from mmcv.ops import nms

    boxes = torch.tensor(
        [[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 9]], dtype=torch.float32
    )
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    dets, keep = nms(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == [3, 2]  # the two overlapping boxes are suppressed by box 3
    assert torch.allclose(dets[:, 4], torch.tensor([0.95, 0.7]))


def test_mmcv_compiled_roi_align() -> None:
    from mmcv.ops import RoIAlign

    feats = torch.arange(16.0).reshape(1, 1, 4, 4).repeat(1, 2, 1, 1)
    rois = torch.tensor([[0, 0.0, 0.0, 4.0, 4.0]])
    out = RoIAlign((2, 2), spatial_scale=1.0, sampling_ratio=2, aligned=True)(feats, rois)
    assert out.shape == (1, 2, 2, 2)
    # bilinear samples of a linear ramp average to the ramp at the bin centres
    expected = torch.tensor([[2.5, 4.5], [10.5, 12.5]])
    assert torch.allclose(out[0, 0], expected, atol=1e-5)


def _mmdet_config(rel: str) -> Path:
    return Path(str(importlib.resources.files("mmdet"))) / ".mim" / "configs" / rel


@pytest.mark.slow
def test_mask_rcnn_r50_fpn_from_wheel_configs_trains_one_step() -> None:
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    from mmengine.structures import InstanceData

    register_all_modules()
    cfg = Config.fromfile(str(_mmdet_config("mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py")))
    cfg.model.backbone.init_cfg = None  # no network: no torchvision:// download
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    rng = np.random.default_rng(0)
    samples = []
    images = []
    for _ in range(2):
        img = torch.from_numpy(rng.integers(0, 255, (3, 256, 256), dtype=np.uint8))
        masks = np.zeros((2, 256, 256), dtype=np.uint8)
        masks[0, 20:120, 30:140] = 1
        masks[1, 150:230, 100:200] = 1
        inst = InstanceData(
            bboxes=torch.tensor([[30.0, 20.0, 140.0, 120.0], [100.0, 150.0, 200.0, 230.0]]),
            labels=torch.tensor([0, 5]),
            masks=BitmapMasks(masks, 256, 256),
        )
        sample = DetDataSample(
            metainfo={
                "img_shape": (256, 256),
                "pad_shape": (256, 256),
                "ori_shape": (256, 256),
                "scale_factor": (1.0, 1.0),
                "batch_input_shape": (256, 256),
            }
        )
        sample.gt_instances = inst
        samples.append(sample)
        images.append(img)
    data = model.data_preprocessor({"inputs": images, "data_samples": samples}, training=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    losses = model.loss(data["inputs"], data["data_samples"])
    assert {"loss_rpn_cls", "loss_cls", "loss_bbox", "loss_mask"} <= set(losses)
    total = sum(v.sum() if isinstance(v, torch.Tensor) else sum(v) for v in losses.values())
    assert torch.isfinite(total)
    before = model.roi_head.mask_head.conv_logits.weight.detach().clone()
    total.backward()
    optimizer.step()
    assert not torch.equal(before, model.roi_head.mask_head.conv_logits.weight)


def test_cocoeval_scores_ground_truth_against_itself_at_ap_one() -> None:
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    rng = np.random.default_rng(0)
    images, annotations, detections = [], [], []
    for image_id in range(1, 6):
        images.append({"id": image_id, "width": 128, "height": 128, "file_name": f"{image_id}.png"})
        for k in range(3):
            x, y = (int(v) for v in rng.integers(0, 80, 2))
            w, h = (int(v) for v in rng.integers(10, 40, 2))
            poly = [x, y, x + w, y, x + w, y + h, x, y + h]
            ann = {
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": k % 2 + 1,
                "bbox": [x, y, w, h],
                "area": w * h,
                "iscrowd": 0,
                "segmentation": [poly],
            }
            annotations.append(ann)
            rle = mask_utils.merge(mask_utils.frPyObjects([poly], 128, 128))
            rle["counts"] = rle["counts"].decode()
            detections.append(
                {
                    "image_id": image_id,
                    "category_id": ann["category_id"],
                    "bbox": ann["bbox"],
                    "score": 1.0,
                    "segmentation": rle,
                }
            )
    gt = COCO()
    gt.dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
    }
    gt.createIndex()
    dt = gt.loadRes(detections)
    for iou_type in ("bbox", "segm"):
        ev = COCOeval(gt, dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        assert ev.stats[0] == pytest.approx(1.0)  # AP@[.5:.95]
        assert ev.stats[1] == pytest.approx(1.0)  # AP50
