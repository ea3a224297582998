"""Run folders as pretraining and transfer save them, made from known numbers for the report tests.

The file layouts are those of real runs (whose reports tests/pretrain/test_pretrain_cli.py and
tests/test_transfer.py check): ``metrics.json`` and ``spectrum.json`` of
``FrozenEvaluation``, Lightning's ``csv/version_*/metrics.csv``, and a transfer work dir's
``results.json``, mmengine's ``TIMESTAMP/vis_data/scalars.json`` and ``TIMESTAMP/vis_test/*.png``.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

HISTORY = [
    {
        "epoch": 0,
        "step": 0,
        "knn_top1": 91.25,
        "linear_top1": 95.5,
        "few_label_top1": 84.125,
        "eval_s": 3.5,
    },
    {
        "epoch": 2,
        "step": 20,
        "knn_top1": 89.0,
        "linear_top1": 96.0,
        "few_label_top1": 85.0,
        "eval_s": 3.25,
    },
    {
        "epoch": 4,
        "step": 40,
        "knn_top1": 93.5,
        "linear_top1": 97.25,
        "few_label_top1": 88.75,
        "eval_s": 3.0,
    },
]
RUN_INFO = {
    "method": "matrix_ssl",
    "data": "digits",
    "backbone": "resnet18",
    "epochs": 4,
    "batch_size": 64,
    "lr": 0.5,
    "eval_split": "test",
    "train_wall_s": 61.5,
}
CATEGORIES = ("rectangle", "ellipse", "triangle")


def spectrum(epoch: int, dim: int = 32, decay: float = 0.5) -> dict:
    eigenvalues = [float(math.exp(-decay * i)) for i in range(dim)]
    s = np.sqrt(eigenvalues)
    p = s / s.sum()
    return {
        "epoch": epoch,
        "step": 10 * epoch,
        "num_images": 100,
        "feature_dim": dim,
        "eigenvalues": eigenvalues,
        "effective_rank": float(np.exp(-(p * np.log(p)).sum())),
        "matrix_entropy": 1.5 + 0.1 * epoch,
    }


def write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = sorted({key for row in rows for key in row})
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def log_rows(first_step: int, last_step: int, steps_per_epoch: int = 10) -> list[dict]:
    """CSVLogger rows: per-step loss, lr, momentum, probe; per-epoch means and diagnostics."""
    rows = []
    for step in range(first_step, last_step):
        epoch = step // steps_per_epoch
        rows.append(
            {
                "epoch": epoch,
                "step": step,
                "train_loss_step": 10.0 - 0.1 * step,
                "lr-SGD/weights": 0.01 * step,
                "momentum": 0.99 + 1e-4 * step,
                "train_online_cls_top1": 0.5,
            }
        )
        if (step + 1) % steps_per_epoch == 0:
            rows.append(
                {
                    "epoch": epoch,
                    "step": step,
                    "train_loss_epoch": 9.0 - epoch,
                    "diag/backbone_effective_rank": 20.0 + epoch,
                    "diag/projection_effective_rank": 10.0 + epoch,
                    "diag/backbone_matrix_entropy": 2.0,
                    "diag/projection_matrix_entropy": 1.0,
                    "val_online_cls_top1": 0.6,
                }
            )
    return rows


def make_pretrain_run(path: Path, *, metrics=True, spectra=True, logs=True) -> Path:
    path.mkdir(parents=True)
    if metrics:
        payload = {"run": RUN_INFO, "history": HISTORY, "final": HISTORY[-1]}
        (path / "metrics.json").write_text(json.dumps(payload))
    if spectra:
        payload = {"features": "backbone", "evaluations": [spectrum(0, decay=1.0), spectrum(4)]}
        (path / "spectrum.json").write_text(json.dumps(payload))
    if logs:
        write_csv(path / "csv" / "version_0" / "metrics.csv", log_rows(0, 40))
    return path


def make_transfer_run(path: Path, *, classwise=True, scalars=True, images=2) -> Path:
    path.mkdir(parents=True)
    metrics = {}
    for iou, base in (("bbox", 0.25), ("segm", 0.3)):
        for key, scale in (
            ("mAP", 1.0),
            ("mAP_50", 2.0),
            ("mAP_75", 0.8),
            ("mAP_s", 0.5),
            ("mAP_m", 1.2),
            ("mAP_l", -1),
        ):
            metrics[f"coco/{iou}_{key}"] = -1.0 if scale < 0 else base * scale
        if classwise:
            for i, name in enumerate(CATEGORIES):
                metrics[f"coco/{iou}_{name}_precision"] = base + 0.1 * i
    summary = {
        iou: {
            name: metrics[f"coco/{iou}_{key}"]
            for key, name in (
                ("mAP", "mAP"),
                ("mAP_50", "AP50"),
                ("mAP_75", "AP75"),
                ("mAP_s", "APs"),
                ("mAP_m", "APm"),
                ("mAP_l", "APl"),
            )
        }
        for iou in ("bbox", "segm")
    }
    results = {
        **summary,
        "config": "mask-rcnn_r18_fpn_demo_coco-shapes",
        "method": "matrix_ssl",
        "architecture": "resnet18",
        "metrics": metrics,
    }
    (path / "results.json").write_text(json.dumps(results))
    folder = path / "20260101_000000"
    (folder / "vis_data").mkdir(parents=True)
    if scalars:
        lines = [
            json.dumps(
                {
                    "lr": 0.02,
                    "loss": 3.0 - 0.1 * i,
                    "loss_cls": 1.0,
                    "loss_bbox": 0.5,
                    "loss_mask": 0.7,
                    "loss_rpn_cls": 0.6,
                    "loss_rpn_bbox": 0.2,
                    "acc": 80.0 + i,
                    "iter": 10 * i,
                    "step": 10 * i,
                }
            )
            for i in range(1, 6)
        ]
        lines.append(json.dumps({"coco/bbox_mAP": 0.25, "coco/segm_mAP": 0.3, "step": 50}))
        (folder / "vis_data" / "scalars.json").write_text("\n".join(lines) + "\n")
    if images:
        (folder / "vis_test").mkdir()
        rng = np.random.default_rng(0)
        for i in range(images):
            pixels = rng.integers(0, 255, (64, 128, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / "vis_test" / f"{i:012d}.png")
    return path
