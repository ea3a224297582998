"""``lightly-matrix transfer``: fine-tune Mask R-CNN from a pretrained backbone, evaluate on COCO,
write ``WORK_DIR/results.json`` beside the protocol's published numbers (docs/transfer.md)."""

from __future__ import annotations

import argparse
import contextlib
import errno
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from lightly_matrix.errors import UserError
from lightly_matrix.transfer import checks
from lightly_matrix.transfer.build import build_config
from lightly_matrix.transfer.coco_check import check_config_data
from lightly_matrix.transfer.configs import (
    DEFAULT_CONFIGS,
    DEFAULT_PROTOCOL,
    DEMO_CONFIG,
    PROTOCOLS,
    config_protocol,
    default_config,
    resolve_config,
)
from lightly_matrix.transfer.results import (
    comparison_table,
    config_architecture,
    markdown_row,
    markdown_table,
    summarise,
)
from lightly_matrix.user_files import path_text as path
from lightly_matrix.utils.checks import positive_int
from lightly_matrix.utils.io import write_json_atomic
from lightly_matrix.utils.lock import folder_lock

# fmt: off
__all__ = ["DEFAULT_CONFIGS", "DEFAULT_PROTOCOL", "DEMO_CONFIG", "PROTOCOLS", "add_arguments",
           "config_protocol", "default_config", "resolve_config", "run"]
# fmt: on


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``transfer`` options."""
    add = parser.add_argument
    # fmt: off
    add("checkpoint", nargs="?", type=path,
        help="training checkpoint or export; none: random init (baseline)")
    add("--config", type=path,
        help="a config name (lightly-matrix configs) or path; default: --protocol's")
    add("--protocol", choices=list(PROTOCOLS),
        help=f"the published COCO tables to compare with (default {DEFAULT_PROTOCOL}): matrix_ssl"
        " = R50-C4 1x, corinfomax = R50-C4 2x, mmselfsup_fpn = R50-FPN 1x")
    add("--demo", action="store_true", help="R18-FPN demo on generated shapes (CPU, minutes)")
    add("--coco-root", type=path,
        help="COCO in the standard layout (annotations/instances_{train,val}2017.json, train2017/,"
        f" val2017/); default data/coco, or {checks.DEMO_DATA_ROOT} (generated) with --demo")
    add("--arch", help="the checkpoint's architecture where it does not record it, as for export")
    add("--trust-pickle", action="store_true",
        help="also read a pickled nn.Module (runs code from the file: only files you trust)")
    add("--gpus", type=positive_int, default=1, help="processes per node (torchrun), one per GPU")
    add("--allow-cpu-ddp", action="store_true", help="debugging: --gpus/--nnodes as CPU processes")
    add("--nnodes", type=positive_int, default=1, help="nodes (torchrun, multi-node)")
    add("--node-rank", type=int, default=0, help="this node's rank (torchrun)")
    add("--master-addr", default="127.0.0.1", help="rank 0's address (torchrun)")
    add("--master-port", type=int, default=29500, help="rank 0's port (torchrun)")
    add("--work-dir", type=path,
        help="output folder without results; default work_dirs/transfer/CONFIG/TIME")
    add("--max-iters", type=int, help="train this many iterations (lr steps scaled to fit)")
    add("--batch-size", type=int, help="images per GPU (default: the config's)")
    add("--no-auto-scale-lr", action="store_true",
        help="keep the config's lr and iterations instead of scaling them with the total batch")
    add("--val-interval", type=int, default=0, help="validate every N epochs/iters too (0: never)")
    add("--seed", type=int, default=0, help="random seed of the fine-tuning")
    add("--no-report", action="store_true", help="do not write WORK_DIR/report.html")
    add("--cfg-options", nargs="+", metavar="KEY=VALUE",
        help="override config entries (e.g. train_dataloader.num_workers=4); not output paths")
    add("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none",
        help="set by the torchrun launch (or slurm/mpi jobs); leave it for --gpus")
    # fmt: on


def _torchrun(
    args: argparse.Namespace, checkpoint: Path | None, config: Path, work_dir: Path, data_root: Path
) -> int:
    """Launch this module in ``--gpus`` processes per node with torchrun."""
    command = [
        sys.executable, "-m", "torch.distributed.run",
        f"--nproc_per_node={args.gpus}", f"--nnodes={args.nnodes}",
        f"--node_rank={args.node_rank}", f"--master_addr={args.master_addr}",
        f"--master_port={args.master_port}",
        "-m", "lightly_matrix.transfer",
        *([str(checkpoint)] if checkpoint else []),
        "--config", str(config), "--work-dir", str(work_dir), "--coco-root", str(data_root),
        "--val-interval", str(args.val_interval), "--seed", str(args.seed),
        "--launcher", "pytorch",
    ]  # fmt: skip
    for flag, value in (("--max-iters", args.max_iters), ("--batch-size", args.batch_size)):
        command += [flag, str(value)] if value is not None else []
    switches = ("--demo", args.demo), ("--no-auto-scale-lr", args.no_auto_scale_lr)
    command += [f for f, on in (*switches, ("--no-report", args.no_report)) if on]
    command += ["--cfg-options", *args.cfg_options] if args.cfg_options else []
    print("launching: " + " ".join(command), flush=True)
    return subprocess.call(command)


def run(args: argparse.Namespace) -> int:
    """Check every input (nothing is written before), then export, train, test and report."""
    from lightly_matrix import export

    export.require_mmdet("lightly-matrix transfer")
    checks.check_counts(args)
    checks.check_devices(args)
    if args.protocol and args.config:
        raise UserError(
            f"--protocol {args.protocol} picks the config; give --protocol or --config, not both"
        )
    distributed_child = args.launcher != "none"
    backbone = (
        export.load_backbone(args.checkpoint, trust_pickle=args.trust_pickle, arch=args.arch)
        if args.checkpoint
        else None
    )
    architecture = backbone.architecture if backbone else None
    config_path = resolve_config(
        args.config or default_config(architecture, args.demo, protocol=args.protocol)
    )
    work_dir = checks.resolve_work_dir(args, config_path.stem)
    data_root = Path(args.coco_root or (checks.DEMO_DATA_ROOT if args.demo else "data/coco"))
    demo_ready = not args.demo or checks.check_demo_root(data_root)
    if demo_ready:
        checks.check_coco_root(data_root)

    is_exported = backbone is not None and backbone.meta.get("format") == export.EXPORT_FORMAT
    backbone_file = None if backbone is None else work_dir / "backbone.pth"
    if is_exported:
        backbone_file = Path(args.checkpoint).resolve()
    elif backbone_file and backbone_file.exists() and backbone_file.samefile(args.checkpoint):
        raise UserError(
            f"{args.checkpoint} is where transfer writes the exported backbone of --work-dir"
            f" {work_dir}; move the checkpoint out of it or choose another --work-dir"
        )
    cfg = build_config(args, config_path, work_dir, data_root, backbone, backbone_file)
    if backbone is not None:
        if not distributed_child:
            export.verify_backbone(backbone)
        try:
            export.verify_backbone(backbone, cfg.model)
        except export.ExportError as err:
            msg = f"{backbone.architecture} checkpoint vs {config_path.stem}: {err}"
            raise export.ExportError(msg) from err
    if args.demo and not demo_ready:
        from lightly_matrix.data.coco_shapes import make_coco_shapes

        make_coco_shapes(data_root, **checks.DEMO_DATA)
    if not (distributed_child and demo_ready):  # torchrun's children read what was checked
        check_config_data(cfg)
    work_dir.mkdir(parents=True, exist_ok=True)  # marked as ours before anything else is written
    if not (marker := work_dir / checks.WORK_DIR_MARKER).exists():
        marker.write_text("created by lightly-matrix transfer\n")
    # torchrun's children run under their parent's lock.
    with contextlib.nullcontext() if distributed_child else folder_lock(work_dir, "--work-dir"):
        checks.check_work_dir(work_dir)  # a run that held the lock may have finished meanwhile
        if backbone is not None and not is_exported and not distributed_child:
            assert backbone_file is not None
            export.save_backbone(backbone, backbone_file, force=True)
        if (args.gpus > 1 or args.nnodes > 1) and not distributed_child:
            return _torchrun(args, backbone_file, config_path, work_dir, data_root)
        return _train_and_test(cfg, args, backbone, backbone_file, data_root)


def _train_and_test(
    cfg: Any, args: argparse.Namespace, backbone: Any, backbone_file: Path | None, data_root: Path
) -> int:
    """Train and test with mmengine's Runner; rank 0 writes and prints the results."""
    from mmengine.dist import get_world_size, is_main_process
    from mmengine.runner import Runner

    runner = Runner.from_cfg(cfg)
    start = time.perf_counter()
    try:
        runner.train()
        train_s, start = time.perf_counter() - start, time.perf_counter()
        metrics = runner.test()
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            raise
        raise UserError(
            f"cannot write {err.filename or 'into ' + str(cfg.work_dir)} ({err.strerror}): the disk"
            f" is full or a file size limit (ulimit -f) was hit; free space and run again with a"
            f" new --work-dir (the files mmdet left in {cfg.work_dir} are incomplete)"
        ) from None
    test_s = time.perf_counter() - start
    if not is_main_process():
        return 0

    meta = backbone.meta if backbone else {}
    config_name = Path(cfg.filename).stem
    optimizer = runner.optim_wrapper.optimizer
    loop = cfg.train_cfg
    results: dict[str, Any] = {
        **summarise(metrics),
        "config": config_name,
        "checkpoint": str(Path(args.checkpoint).resolve()) if args.checkpoint else None,
        "backbone_file": str(backbone_file) if backbone_file else None,
        "method": meta.get("method"),
        "architecture": backbone.architecture if backbone else config_architecture(cfg),
        "pretrain_epochs": meta.get("epochs"),
        "source_sha256": meta.get("source_sha256"),
        "schedule": {k: loop[k] for k in ("type", "max_epochs", "max_iters") if k in loop},
        "world_size": get_world_size(),
        "total_batch_size": get_world_size() * cfg.train_dataloader.batch_size,
        "base_lr": optimizer.param_groups[0].get("initial_lr", optimizer.param_groups[0]["lr"]),
        "data_root": str(data_root.resolve()),
        "train_time_s": round(train_s, 1),
        "test_time_s": round(test_s, 1),
        "metrics": {k: float(v) for k, v in metrics.items()},
        "protocol": config_protocol(config_name),
    }
    results["markdown_row"] = markdown_row(results)
    work_dir = Path(cfg.work_dir)
    write_json_atomic(work_dir / "results.json", results)
    print(f"\nresults written to {work_dir / 'results.json'}\n")
    print(markdown_table([results["markdown_row"]]))
    if "bbox" not in results:  # mmdet's CocoMetric only logs that its results are empty
        print("the model made no detections on the test images, so it has no AP (0 in effect):"
              " train longer (more --max-iters, the full schedule) or check the data")  # fmt: skip
    if comparison := comparison_table(results, full_schedule=args.max_iters is None):
        print("\n" + comparison)
    from lightly_matrix.report import report_after_run

    report_after_run(work_dir, enabled=not args.no_report)
    return 0
