"""Checks of a transfer run's inputs and outputs, all before anything is built or written."""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

from lightly_matrix.errors import UserError
from lightly_matrix.user_files import check_writable

#: Arguments of :func:`lightly_matrix.data.coco_shapes.make_coco_shapes` for ``--demo``.
DEMO_DATA = {"num_train": 400, "num_val": 100, "image_size": 160, "seed": 0, "max_shapes": 4}
DEMO_DATA_ROOT = Path("work_dirs") / "coco_shapes"
#: What a COCO root must hold (the standard layout).
COCO_LAYOUT = ("annotations/instances_train2017.json", "annotations/instances_val2017.json",
               "train2017", "val2017")  # fmt: skip
#: Written first into every work dir we create; other non-empty directories are never used.
WORK_DIR_MARKER = ".lightly_matrix_transfer"


def check_demo_root(root: Path) -> bool:
    """Whether the demo data at ``root`` is complete (``False``: to be generated there)."""
    from lightly_matrix.data.coco_shapes import check_shapes_root

    try:
        ready = check_shapes_root(root, **DEMO_DATA)
    except ValueError as err:
        raise UserError(
            f"{err}; --demo generates its data under --coco-root: pass a new or empty directory"
            f" (or omit it for {DEMO_DATA_ROOT})"
        ) from err
    if not ready:
        check_writable(root, f"--coco-root {root} (where --demo generates its data)")
    return ready


def check_coco_root(root: Path) -> None:
    """Fail before training on an incomplete COCO layout, listing everything missing at once."""
    if root.is_file():
        raise UserError(
            f"{root} is a file, not a folder; pass the COCO folder holding annotations/,"
            " train2017/ and val2017/"
        )
    missing = [rel for rel in COCO_LAYOUT if not (root / rel).exists()]
    if missing:
        raise UserError(
            f"COCO at {root} is incomplete, missing: {', '.join(missing)}; expected the standard"
            f" layout ({', '.join(COCO_LAYOUT)}) under it"
        )
    for rel in COCO_LAYOUT[2:]:
        if not (root / rel).is_dir():
            raise UserError(f"{root / rel} is not a directory; it should hold the {rel} images")


def check_devices(args: argparse.Namespace) -> None:
    """Fail in one line, before torchrun starts, where ``--gpus``/``--nnodes`` lack CUDA GPUs."""
    if args.launcher != "none" or (args.gpus == 1 and args.nnodes == 1) or args.allow_cpu_ddp:
        return
    import torch

    if not torch.cuda.is_available():
        raise UserError(
            f"--gpus {args.gpus} --nnodes {args.nnodes} starts one process per CUDA GPU, but torch"
            " sees no CUDA GPU here; run with --gpus 1 (the default), or pass --allow-cpu-ddp to"
            " debug with CPU processes"
        )
    if torch.cuda.device_count() < args.gpus:
        raise UserError(
            f"--gpus {args.gpus} but only {torch.cuda.device_count()} CUDA GPU(s) are visible"
            " (CUDA_VISIBLE_DEVICES?); pass at most that many"
        )


def check_counts(args: argparse.Namespace) -> None:
    """Fail in one line on options out of range, before anything is built (0 is never "default")."""
    problems: list[str] = []
    own = " (omit it for the config's own)"
    for flag, value, low, hint in (
        ("--max-iters", args.max_iters, 1, own),
        ("--batch-size", args.batch_size, 1, own),
        ("--val-interval", args.val_interval, 0, ""),
        ("--seed", args.seed, 0, ""),
        ("--node-rank", args.node_rank, 0, ""),
    ):
        if value is not None and value < low:
            problems.append(f"{flag} must be >= {low}, got {value}{hint}")
    if args.seed >= 2**32:
        problems.append(f"--seed must be < 2**32 (numpy's limit), got {args.seed}")
    if args.node_rank >= args.nnodes:
        problems.append(f"--node-rank {args.node_rank} must be below --nnodes {args.nnodes}")
    if not 1 <= args.master_port <= 65535:
        problems.append(f"--master-port must be a TCP port (1-65535), got {args.master_port}")
    if args.nnodes > 1 and not args.work_dir:
        problems.append("multi-node runs need a --work-dir on storage shared by the nodes")
    if problems:
        raise UserError("; ".join(problems))


def check_work_dir(work_dir: Path) -> None:
    """Refuse a work dir that holds results, or that is not empty and not made by ``transfer``."""
    if work_dir.exists() and not work_dir.is_dir():
        raise UserError(f"--work-dir {work_dir} is a file; choose a directory")
    if (work_dir / "results.json").exists():
        raise UserError(
            f"{work_dir} already holds results.json of an earlier run; not overwriting it"
            " (choose another --work-dir, or omit it for a fresh timestamped one)"
        )
    if work_dir.is_dir() and not (work_dir / WORK_DIR_MARKER).is_file() and any(work_dir.iterdir()):
        raise UserError(
            f"{work_dir} is not empty and was not created by lightly-matrix transfer; not writing"
            " into it (choose a new or empty --work-dir, or omit it for a fresh timestamped one)"
        )


def resolve_work_dir(args: argparse.Namespace, config_name: str) -> Path:
    """The output directory, checked but not created yet."""
    if args.work_dir:
        work_dir = Path(args.work_dir)
        check_work_dir(work_dir)
    else:
        stamp = datetime.datetime.now().strftime("%Y%m%d_%H%M%S")
        work_dir = Path("work_dirs") / "transfer" / config_name / stamp
        suffix = 1
        while work_dir.exists():
            work_dir = work_dir.with_name(f"{stamp}_{suffix}")
            suffix += 1
    check_writable(work_dir, f"--work-dir {work_dir}")
    return work_dir.resolve()
