"""Every pretraining method on the offline digits, at equal budget, against untrained baselines.

Each method is pretrained with ``lightly-matrix pretrain`` (the ``digits`` preset: ResNet-18, 32 px,
the same augmentations, epochs and batch for all; the masked-image methods need a ViT, so they use
ViT-Tiny with 4 px patches) and its frozen backbone is scored with kNN, a linear probe and a
10-labels-per-class probe on the fixed 540-image test split. Rows for randomly initialised
backbones and for raw pixels are added. Writes ``OUT/results.md`` and ``OUT/results.json``.

Usage::

    nice python benchmarks/pretrain_digits.py --epochs 10 --out runs/bench_digits
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from lightly_matrix.cli import main as cli_main
from lightly_matrix.data.digits import NUM_CLASSES, DigitsDataset
from lightly_matrix.data.transforms import build_eval_transform
from lightly_matrix.evaluation import (
    ProbeData,
    evaluate_encoder,
    evaluate_features,
    extract_features,
    format_table,
)
from lightly_matrix.methods import MASKED_METHODS, build_backbone
from lightly_matrix.presets import PRESETS

METHODS = ("matrix_ssl", "corinfomax", "barlowtwins", "vicreg", "mmae", "umae", "mae")
COLUMNS = (
    ("name", "method"),
    ("backbone", "backbone"),
    ("knn_top1", "kNN top-1 (%)"),
    ("linear_top1", "linear top-1 (%)"),
    ("few_label_top1", "10 labels/class top-1 (%)"),
    ("train_wall_s", "train wall time (s)"),
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--out", default="runs/bench_digits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--reuse", action="store_true", help="reuse finished runs in OUT, continue unfinished ones"
    )
    return parser.parse_args()


def probe_data(image_size: int) -> ProbeData:
    transform = build_eval_transform(image_size, resize=False)
    return ProbeData(
        DigitsDataset("train", transform, image_size=image_size),
        DigitsDataset("test", transform, image_size=image_size),
        NUM_CLASSES,
    )


def baselines(image_size: int, seed: int) -> list[dict[str, Any]]:
    """Randomly initialised backbones (same seed as the runs) and raw pixels."""
    data = probe_data(image_size)
    rows = []
    vit_settings = PRESETS["digits"].settings("mmae")
    for name, patch_size in (
        ("resnet18", None),
        (vit_settings["backbone"], vit_settings["patch_size"]),
    ):
        torch.manual_seed(seed)
        backbone, _ = build_backbone(name, image_size, patch_size)
        backbone.eval()
        start = time.perf_counter()
        with torch.no_grad():
            metrics = evaluate_encoder(lambda x, b=backbone: b(x).flatten(1), data)
        label = f"{name} (patch {patch_size})" if patch_size else name
        rows.append(
            {
                "name": "random init",
                "backbone": label,
                **metrics,
                "eval_s": time.perf_counter() - start,
            }
        )
    train_x, train_y = extract_features(lambda x: x.flatten(1), data.train)
    test_x, test_y = extract_features(lambda x: x.flatten(1), data.test)
    pixels = evaluate_features(train_x, train_y, test_x, test_y, NUM_CLASSES)
    rows.append({"name": "raw pixels", "backbone": f"{3 * image_size**2}-d", **pixels})
    return rows


def pretrain(method: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Runs one method through the CLI and returns its final metrics row."""
    metrics_file = out / "metrics.json"
    # train_wall_s is written when a run finishes; an unfinished run continues from last.ckpt.
    metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {"run": {}}
    if not (args.reuse and "train_wall_s" in metrics["run"]):
        resume = ["--resume", str(out)] if args.reuse and (out / "last.ckpt").exists() else []
        if args.reuse and not resume and out.exists():
            shutil.rmtree(out)  # stopped within its first epoch: nothing to continue
        argv = [
            "pretrain",
            "--method",
            method,
            "--data",
            "digits",
            "--epochs",
            str(args.epochs),
            "--batch-size",
            str(args.batch_size),
            "--image-size",
            str(args.image_size),
            "--seed",
            str(args.seed),
            "--no-progress",
            "--out",
            str(out),
            *resume,
        ]
        status = cli_main(argv)
        if status != 0:
            raise SystemExit(f"pretraining {method} failed with status {status}")
    metrics = json.loads(metrics_file.read_text())
    backbone = metrics["run"]["backbone"]
    if method in MASKED_METHODS:
        backbone += f" (patch {PRESETS['digits'].settings(method)['patch_size']})"
    return {
        "name": method,
        "backbone": backbone,
        **metrics["final"],
        "train_wall_s": metrics["run"].get("train_wall_s"),
    }


def main() -> None:
    args = parse_args()
    root = Path(args.out)
    root.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows = [pretrain(method, args, root / method) for method in args.methods]
    rows += baselines(args.image_size, args.seed)
    header = (
        f"Digits ({args.image_size} px, 1,257 train / 540 test), {args.epochs} epochs, batch "
        f"{args.batch_size}, "
        f"seed {args.seed}; {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, fp32.\n"
        "mmae/umae/mae need a ViT: ViT-Tiny (4 px patches) instead of ResNet-18.\n"
    )
    table = format_table(rows, COLUMNS)
    print("\n" + header + "\n" + table)
    (root / "results.md").write_text(header + "\n" + table + "\n")
    (root / "results.json").write_text(
        json.dumps({"settings": vars(args), "rows": rows}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
