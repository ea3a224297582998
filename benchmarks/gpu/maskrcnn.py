"""Mask R-CNN R50-FPN training iteration time, its backbone loaded from our export.

A Matrix-SSL ResNet-50 (random init) is exported with ``lightly_matrix.export.export_backbone``
and loaded by the config's ``init_cfg``; mmengine's ``Runner`` then trains the config's model
and optimiser for a few iterations (``IterBasedTrainLoop``; fp32, and fp16 AMP through
``AmpOptimWrapper``) on in-memory batches from mmdet's ``demo_mm_inputs`` (COCO-sized images after
the protocol's resize, with boxes and masks), so that decoding does not bound the numbers. The
time of each iteration is mmengine's ``IterTimerHook``'s.

    python -m benchmarks.gpu.maskrcnn                 # mask-rcnn_r50_fpn_ms-1x_coco, fp32 + AMP
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.gpu.common import markdown_table, parser, peak_mib, peak_start, resolve, write
from benchmarks.gpu.common import short_error as _error

COLUMNS = [
    ("config", "config"),
    ("amp", "AMP (fp16)"),
    ("batch", "batch"),
    ("image", "image (h x w)"),
    ("iter_ms", "iteration (ms, median)"),
    ("images_per_s", "images/s"),
    ("peak_gib", "peak memory (GiB)"),
    ("loss", "last loss"),
    ("status", "status"),
]
#: A dry run's proposals and RoI samples: the protocol's 512 RoIs take minutes on a CPU.
DRY_RUN_OVERRIDES = {
    "model.train_cfg.rpn_proposal.nms_pre": 200,
    "model.train_cfg.rpn_proposal.max_per_img": 20,
    "model.train_cfg.rcnn.sampler.num": 8,
}


def exported_backbone(depth: int, folder: Path) -> Path:
    """A randomly initialised Matrix-SSL ResNet, exported for mmdet."""
    from lightly_matrix.export import export_backbone
    from lightly_matrix.methods import METHOD_CLASSES

    module = METHOD_CLASSES["matrix_ssl"](backbone=f"resnet{depth}", hidden_dim=64, output_dim=32)
    export_backbone(module, folder / "backbone.pth")
    return folder / "backbone.pth"


def train(args: Any, amp: bool, device: str, work_dir: Path, backbone: Path, row: dict) -> None:
    """Trains the config's model for the warm-up and timed iterations; fills ``row``."""
    from mmdet.testing import demo_mm_inputs
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    from mmengine.runner import Runner
    from torch.utils.data import DataLoader

    from lightly_matrix.transfer import resolve_config

    h, w = args.image
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(str(resolve_config(args.config)))
    if args.dry_run:
        cfg.merge_from_dict(DRY_RUN_OVERRIDES)
    cfg.model.backbone.init_cfg = dict(
        type="Pretrained", checkpoint=str(backbone), prefix="backbone."
    )
    optim = dict(cfg.optim_wrapper, type="AmpOptimWrapper" if amp else "OptimWrapper")
    optim["optimizer"] = dict(optim["optimizer"], lr=optim["optimizer"]["lr"] * args.batch / 16)
    batch = demo_mm_inputs(
        args.batch, [(3, h, w)] * args.batch, num_items=[7] * args.batch, with_mask=True
    )
    iters = args.warmup + args.iters
    runner = Runner(
        model=cfg.model,
        work_dir=str(work_dir / f"amp{int(amp)}"),
        train_dataloader=DataLoader([batch] * iters, None, collate_fn=lambda b: b),  # type: ignore
        optim_wrapper=optim,
        train_cfg=dict(type="IterBasedTrainLoop", max_iters=iters),
        # Timed by IterTimerHook; no sampler to seed (the batches are ready), no checkpoint.
        default_hooks=dict(timer=dict(type="IterTimerHook"), sampler_seed=None, checkpoint=None),
        default_scope="mmdet",
        env_cfg=dict(cudnn_benchmark=device == "cuda"),
        log_level="WARNING",
    )
    start = peak_start(device)
    runner.train()
    peak = peak_mib(device, start)
    row["peak_gib"] = None if peak is None else peak / 1024
    times = runner.message_hub.get_scalar("train/time").data[0][args.warmup :]
    row["iter_ms"] = 1e3 * statistics.median(times)
    row["images_per_s"] = args.batch * 1e3 / row["iter_ms"]
    row["loss"] = float(runner.message_hub.get_scalar("train/loss").current())


def measure(args: Any, amp: bool, device: str, work_dir: Path, backbone: Path) -> dict[str, Any]:
    """One row; an error (mmcv without CUDA ops, out of memory) is named in it."""
    import torch

    row: dict[str, Any] = {"config": args.config, "amp": amp, "batch": args.batch}
    row["image"] = "x".join(map(str, args.image))
    try:
        train(args, amp, device, work_dir, backbone, row)
        row["status"] = "ok"
    except Exception as err:
        row["status"] = f"error: {_error(err)}"
    if device == "cuda":
        torch.cuda.empty_cache()
    return row


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--config", default="mask-rcnn_r50_fpn_ms-1x_coco")
    p.add_argument("--batch", type=int, default=2, help="images per iteration (the protocol's)")
    # A 640 x 480 COCO image resized to short side 800 (the multi-scale protocol's largest).
    p.add_argument("--image", type=int, nargs=2, default=[800, 1067], metavar=("H", "W"))
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--iters", type=int, default=20, help="timed iterations")
    args = p.parse_args(argv)
    device = resolve(args)
    if args.dry_run:
        args.config = args.config.replace("r50", "r18")
        args.image, args.warmup, args.iters = [96, 128], 1, 1
    depth = int(args.config.split("_r")[1][:2])
    with tempfile.TemporaryDirectory() as tmp:
        backbone = exported_backbone(depth, Path(tmp))
        amps = [False] if device == "cpu" else [False, True]
        rows = [measure(args, amp, device, Path(tmp), backbone) for amp in amps]
    notes = [
        f"mmengine Runner, {args.iters} timed iterations after {args.warmup} (IterTimerHook);"
        " in-memory batches, 7 objects with masks per image; SyncBN runs as BN on one process."
    ]
    title = f"Mask R-CNN training iteration, {args.config}"
    write(args, "maskrcnn", title, rows, markdown_table(COLUMNS, rows), device, notes)
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
