"""Fine-tune Mask R-CNN from a pretrained backbone, evaluate on COCO: ``lightly-matrix transfer``.

One command runs the whole transfer protocol with mmengine's ``Runner``::

    lightly-matrix transfer runs/matrix_ssl/last.ckpt --coco-root data/coco --gpus 8
    lightly-matrix transfer --demo                 # random-init baseline on generated shapes
    tools/transfer_coco.sh runs/matrix_ssl/last.ckpt --demo

It exports the checkpoint (our Lightning checkpoints, Lightly/torchvision ResNets, timm ViTs, or
a file already exported), picks the config matching the backbone's architecture from
``mmdet_configs/`` unless ``--config`` names one, checks the exported weights against that very
config, trains, tests, and writes ``WORK_DIR/results.json`` plus a Markdown table row. Without a
checkpoint the backbone is randomly initialised (the baseline row).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from lightly_matrix.cli import UserError

#: Our configs live beside the package in the repository (``mmdet_configs/``).
CONFIG_DIR = Path(__file__).resolve().parents[1] / "mmdet_configs"
#: Config chosen for each backbone architecture when ``--config`` is not given: the C4 protocol
#: of MoCo / Matrix-SSL for ResNets, the simple-pyramid config for ViTs.
DEFAULT_CONFIGS = {
    "resnet18": "mask-rcnn_r18-c4_ms-1x_coco",
    "resnet50": "mask-rcnn_r50-c4_ms-1x_coco",
    "vit": "mask-rcnn_vit-b16_sfp_ms-1x_coco",
}
DEMO_CONFIG = "mask-rcnn_r18_fpn_demo_coco-shapes"
#: Arguments of :func:`lightly_matrix.data.coco_shapes.make_coco_shapes` for ``--demo``.
DEMO_DATA = {"num_train": 400, "num_val": 100, "image_size": 160, "seed": 0}
DEMO_DATA_ROOT = Path("work_dirs") / "coco_shapes"
#: What a COCO root must hold (the standard layout).
COCO_LAYOUT = (
    "annotations/instances_train2017.json",
    "annotations/instances_val2017.json",
    "train2017",
    "val2017",
)
#: mmdet's CocoMetric keys -> our result names.
_METRIC_NAMES = {
    "mAP": "mAP",
    "mAP_50": "AP50",
    "mAP_75": "AP75",
    "mAP_s": "APs",
    "mAP_m": "APm",
    "mAP_l": "APl",
}
_TABLE_HEADER = (
    "| method | backbone | pretrain epochs | config | AP_bb | AP50_bb | AP75_bb | AP_mk | AP50_mk"
    " | AP75_mk |\n|---|---|---|---|---|---|---|---|---|---|"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``transfer`` options."""
    parser.add_argument(
        "checkpoint",
        nargs="?",
        default=None,
        help="training checkpoint (exported on the fly) or an exported backbone file; without one"
        " the backbone is randomly initialised (baseline)",
    )
    parser.add_argument(
        "--config",
        default=None,
        help="config name in mmdet_configs/ (e.g. mask-rcnn_r50_fpn_ms-1x_coco) or a path;"
        " default: chosen from the checkpoint's architecture",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="generated coloured-shapes data and the small R18-FPN demo schedule (CPU, minutes)",
    )
    parser.add_argument(
        "--coco-root",
        default=None,
        help="COCO in the standard layout (annotations/instances_{train,val}2017.json, train2017/,"
        f" val2017/); default data/coco, or {DEMO_DATA_ROOT} (generated) with --demo",
    )
    parser.add_argument("--gpus", type=int, default=1, help="processes per node (torchrun)")
    parser.add_argument("--nnodes", type=int, default=1, help="nodes (torchrun, multi-node)")
    parser.add_argument("--node-rank", type=int, default=0, help="this node's rank (torchrun)")
    parser.add_argument("--master-addr", default="127.0.0.1", help="rank 0's address (torchrun)")
    parser.add_argument("--master-port", type=int, default=29500, help="rank 0's port (torchrun)")
    parser.add_argument(
        "--work-dir",
        default=None,
        help="output directory; default work_dirs/transfer/CONFIG/TIMESTAMP. One holding results is"
        " refused",
    )
    parser.add_argument(
        "--max-iters",
        type=int,
        default=None,
        help="train this many iterations instead of the config's epochs (schedule scaled to fit)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help="images per GPU (default: the config's)"
    )
    parser.add_argument(
        "--no-auto-scale-lr",
        action="store_true",
        help="keep the config's lr instead of scaling it with the total batch (base batch 16)",
    )
    parser.add_argument(
        "--val-interval",
        type=int,
        default=0,
        help="also validate every N epochs (iterations with --max-iters) while training;"
        " 0 (default): only the final test",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed of the fine-tuning")
    parser.add_argument(
        "--cfg-options",
        nargs="+",
        default=None,
        metavar="KEY=VALUE",
        help="override config entries, as mmdet's tools do (e.g. train_dataloader.num_workers=4)",
    )
    parser.add_argument(
        "--launcher",
        choices=["none", "pytorch", "slurm", "mpi"],
        default="none",
        help="set by the torchrun launch (or for slurm/mpi jobs); leave it for --gpus",
    )


# --- configs -------------------------------------------------------------------------------------


def available_configs() -> list[str]:
    """Names of the configs in ``mmdet_configs/``."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.py"))


def resolve_config(name: str) -> Path:
    """A config path from a name in ``mmdet_configs/`` (``.py`` optional) or a file path."""
    path = Path(name)
    if path.is_file():
        return path.resolve()
    candidate = CONFIG_DIR / (name if name.endswith(".py") else f"{name}.py")
    if candidate.is_file():
        return candidate
    raise UserError(
        f"config {name!r} not found; use a file or one of: {', '.join(available_configs())}"
    )


def default_config(architecture: str | None, demo: bool) -> str:
    """The config name for an architecture (``None``: random-init ResNet-50 / demo ResNet-18)."""
    if demo:
        if architecture is not None and not architecture.startswith("resnet"):
            raise UserError(
                f"the demo config is a ResNet Mask R-CNN; a {architecture} needs --config"
            )
        return DEMO_CONFIG
    if architecture is None:
        return DEFAULT_CONFIGS["resnet50"]
    key = "vit" if architecture.startswith("vit") else architecture
    if key not in DEFAULT_CONFIGS:
        raise UserError(
            f"no default config for a {architecture}; pass --config (one of: "
            f"{', '.join(available_configs())})"
        )
    return DEFAULT_CONFIGS[key]


def _walk_dicts(node: Any):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk_dicts(value)
    elif isinstance(node, list | tuple):
        for value in node:
            yield from _walk_dicts(value)


def set_data_root(cfg: Any, root: str | Path) -> None:
    """Point every dataloader and COCO evaluator of ``cfg`` at ``root``.

    mmengine resolves ``data_root`` variables when the file is parsed, so changing the top-level
    variable afterwards would not reach the datasets; each one is set here instead.
    """
    root = str(Path(root).resolve()) + os.sep
    for split in ("train", "val", "test"):
        loader = cfg.get(f"{split}_dataloader")
        if not loader:
            continue
        dataset = loader["dataset"]
        while "dataset" in dataset:  # dataset wrappers (RepeatDataset, ...)
            dataset = dataset["dataset"]
        dataset["data_root"] = root
        evaluator = cfg.get(f"{split}_evaluator")
        for metric in _walk_dicts(evaluator):
            if "ann_file" in metric:
                metric["ann_file"] = os.path.join(root, dataset["ann_file"])


def _resize_for_resnet(cfg: Any, depth: int) -> None:
    """Adapt an FPN ResNet config (the demo) to the checkpoint's ResNet depth."""
    backbone = cfg.model.backbone
    if backbone.get("type") != "ResNet" or backbone.depth == depth:
        return
    if cfg.model.get("neck") is None or (
        "roi_head" in cfg.model and cfg.model.roi_head.get("shared_head")
    ):
        raise UserError(f"the config is for a ResNet-{backbone.depth}; pass a matching --config")
    expansion = 4 if depth >= 50 else 1
    backbone.depth = depth
    cfg.model.neck.in_channels = [64 * expansion * 2**i for i in range(4)]


def _iteration_schedule(cfg: Any, max_iters: int) -> None:
    """Replace the epoch schedule by ``max_iters`` iterations, milestones scaled to fit."""
    epochs = cfg.train_cfg.get("max_epochs")
    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=max_iters, val_interval=max_iters)
    schedulers = []
    for scheduler in cfg.get("param_scheduler") or []:
        scheduler = copy.deepcopy(dict(scheduler))
        if scheduler.get("by_epoch", True) and epochs:
            scale = max_iters / epochs
            scheduler["by_epoch"] = False
            scheduler["begin"] = round(scheduler.get("begin", 0) * scale)
            scheduler["end"] = min(max_iters, round(scheduler.get("end", epochs) * scale))
            if "milestones" in scheduler:
                scheduler["milestones"] = [
                    max(1, round(m * scale)) for m in scheduler["milestones"]
                ]
        else:
            # An iteration warm-up longer than a quarter of a short run would be the whole run.
            scheduler["end"] = min(scheduler.get("end", max_iters), max(1, max_iters // 4))
        schedulers.append(scheduler)
    cfg.param_scheduler = schedulers
    cfg.default_hooks.checkpoint = dict(
        type="CheckpointHook", by_epoch=False, interval=max_iters, max_keep_ckpts=1
    )
    logger = cfg.default_hooks.get("logger")
    if logger is not None:
        logger["interval"] = max(1, min(logger.get("interval", 50), max_iters // 5))
    cfg.log_processor = dict(cfg.get("log_processor") or {}, by_epoch=False)


def _replace_norm(node: Any, old: str, new: str) -> None:
    for d in _walk_dicts(node):
        if d.get("type") == old:
            d["type"] = new


def build_config(
    args: argparse.Namespace,
    config_path: Path,
    work_dir: Path,
    data_root: Path,
    backbone: Any | None,
    backbone_file: Path | None,
) -> Any:
    """Load a config and apply the run's settings (data, weights, schedule, batch, launcher).

    Args:
        args: Parsed ``transfer`` arguments.
        config_path: The config file.
        work_dir: Output directory.
        data_root: COCO-layout data.
        backbone: The converted :class:`lightly_matrix.export.Backbone`, or ``None`` (random init).
        backbone_file: The exported file that ``init_cfg`` loads.

    Returns:
        The mmengine ``Config``.
    """
    from mmengine.config import Config, DictAction

    cfg = Config.fromfile(str(config_path))
    cfg.work_dir = str(work_dir)
    cfg.launcher = args.launcher
    set_data_root(cfg, data_root)
    model = cfg.model
    if backbone is not None:
        if backbone.family == "vit":
            if model.backbone.get("type") != backbone.backbone_cfg["type"]:
                raise UserError(
                    f"{config_path.name} has a {model.backbone.get('type')} backbone, the"
                    f" checkpoint a {backbone.architecture}; pass a ViT config"
                )
            model.backbone.update({k: v for k, v in backbone.backbone_cfg.items() if k != "type"})
        elif args.demo:
            _resize_for_resnet(cfg, backbone.backbone_cfg["depth"])
        pretrained = dict(type="Pretrained", checkpoint=str(backbone_file), prefix="backbone.")
        model.backbone.init_cfg = pretrained
        shared = model.get("roi_head", {}).get("shared_head")
        if shared is not None:  # C4: res5 is the RoI head's, loaded from the same file
            shared.init_cfg = dict(pretrained)
    else:
        # No download in random-init runs either (stock configs name torchvision:// weights).
        model.backbone.init_cfg = None
    if args.batch_size:
        cfg.train_dataloader.batch_size = args.batch_size
    cfg.auto_scale_lr = dict(cfg.get("auto_scale_lr") or {"base_batch_size": 16})
    cfg.auto_scale_lr["enable"] = not args.no_auto_scale_lr
    if args.max_iters:
        _iteration_schedule(cfg, args.max_iters)
    if args.val_interval > 0:
        cfg.train_cfg.val_interval = args.val_interval
    else:
        # The final test on val2017 gives the reported numbers; no second pass over it.
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.randomness = dict(seed=args.seed)
    import torch

    if not torch.cuda.is_available():
        cfg.env_cfg.dist_cfg = dict(backend="gloo")
        if args.launcher != "none":
            # torch's SyncBatchNorm needs CUDA; CPU processes (tests, debugging) use plain BN.
            _replace_norm(cfg.model, "SyncBN", "BN")
    if args.cfg_options:
        action = DictAction(option_strings=["--cfg-options"], dest="cfg_options")
        namespace = argparse.Namespace()
        action(argparse.ArgumentParser(), namespace, args.cfg_options)
        cfg.merge_from_dict(namespace.cfg_options)
    return cfg


# --- inputs and outputs --------------------------------------------------------------------------


def check_coco_root(root: Path) -> None:
    """Fail before training if the COCO layout is incomplete, naming everything missing."""
    missing = [rel for rel in COCO_LAYOUT if not (root / rel).exists()]
    if missing:
        raise UserError(
            f"COCO at {root} is incomplete, missing: {', '.join(missing)}; expected the standard"
            f" layout ({', '.join(COCO_LAYOUT)}) under --coco-root"
        )


def resolve_work_dir(args: argparse.Namespace, config_name: str) -> Path:
    """The output directory; an explicit one must not already hold results."""
    if args.work_dir:
        work_dir = Path(args.work_dir)
        if (work_dir / "results.json").exists():
            raise UserError(
                f"{work_dir} already holds results.json of an earlier run; not overwriting it"
                " (choose another --work-dir, or omit it for a fresh timestamped one)"
            )
    else:
        stamp = datetime.datetime.now().strftime("%Y%m%d_%H%M%S")
        work_dir = Path("work_dirs") / "transfer" / config_name / stamp
        suffix = 1
        while work_dir.exists():
            work_dir = work_dir.with_name(f"{stamp}_{suffix}")
            suffix += 1
    return work_dir.resolve()


def summarise(metrics: dict[str, float]) -> dict[str, dict[str, float]]:
    """CocoMetric's ``coco/bbox_mAP``-style keys as ``{'bbox': {'mAP', 'AP50', ...}, 'segm': ...}``.

    Values are mmdet's, i.e. fractions in [0, 1] (-1 where COCO has no such objects).
    """
    out: dict[str, dict[str, float]] = {}
    for iou_type in ("bbox", "segm"):
        values = {
            name: float(metrics[f"coco/{iou_type}_{key}"])
            for key, name in _METRIC_NAMES.items()
            if f"coco/{iou_type}_{key}" in metrics
        }
        if values:
            out[iou_type] = values
    return out


def markdown_row(results: dict[str, Any]) -> str:
    """One row of the transfer table (AP in percent, as papers report it)."""

    def ap(iou_type: str, name: str) -> str:
        value = results.get(iou_type, {}).get(name)
        return "-" if value is None or value < 0 else f"{100 * value:.1f}"

    cells = [
        results.get("method") or ("random init" if not results.get("checkpoint") else "-"),
        results.get("architecture") or "-",
        str(results.get("pretrain_epochs") or "-"),
        results["config"],
        *(ap(t, n) for t in ("bbox", "segm") for n in ("mAP", "AP50", "AP75")),
    ]
    return "| " + " | ".join(cells) + " |"


def markdown_table(rows: list[str]) -> str:
    """The table header followed by ``rows``."""
    return "\n".join([_TABLE_HEADER, *rows])


# --- running -------------------------------------------------------------------------------------


def _torchrun(
    args: argparse.Namespace, checkpoint: Path | None, config: Path, work_dir: Path, data_root: Path
) -> int:
    """Launch this module in ``--gpus`` processes per node with torchrun (prepared inputs)."""
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
    if args.demo:
        command.append("--demo")
    if args.max_iters:
        command += ["--max-iters", str(args.max_iters)]
    if args.batch_size:
        command += ["--batch-size", str(args.batch_size)]
    if args.no_auto_scale_lr:
        command.append("--no-auto-scale-lr")
    if args.cfg_options:
        command += ["--cfg-options", *args.cfg_options]
    print("launching: " + " ".join(command), flush=True)
    return subprocess.call(command)


def run(args: argparse.Namespace) -> int:
    """Export (if needed), check, train, test and report; see the module docstring."""
    from lightly_matrix.export import (
        EXPORT_FORMAT,
        ExportError,
        load_backbone,
        save_backbone,
        verify_backbone,
    )

    if args.gpus < 1 or args.nnodes < 1:
        raise UserError("--gpus and --nnodes must be at least 1")
    distributed_child = args.launcher != "none"
    # Inputs first, so that a wrong path fails in seconds, before anything heavy is built.
    backbone = load_backbone(args.checkpoint) if args.checkpoint else None
    architecture = backbone.architecture if backbone else None
    config_path = resolve_config(args.config or default_config(architecture, args.demo))
    config_name = config_path.stem

    if args.demo:
        from lightly_matrix.data.coco_shapes import make_coco_shapes

        data_root = Path(args.coco_root or DEMO_DATA_ROOT)
        try:
            make_coco_shapes(data_root, **DEMO_DATA)
        except ValueError as err:
            raise UserError(f"{err}; use another --coco-root for the demo data") from err
    else:
        data_root = Path(args.coco_root or "data/coco")
    check_coco_root(data_root)

    if args.nnodes > 1 and not args.work_dir:
        raise UserError(
            "multi-node runs need an explicit --work-dir on storage shared by the nodes"
        )
    work_dir = resolve_work_dir(args, config_name)
    work_dir.mkdir(parents=True, exist_ok=True)

    backbone_file: Path | None = None
    if backbone is not None:
        is_exported = backbone.meta.get("format") == EXPORT_FORMAT
        backbone_file = (
            Path(args.checkpoint).resolve() if is_exported else work_dir / "backbone.pth"
        )
        if not is_exported and not distributed_child:
            verify_backbone(backbone)
            save_backbone(backbone, backbone_file, force=True)

    cfg = build_config(args, config_path, work_dir, data_root, backbone, backbone_file)
    if backbone is not None:
        try:
            verify_backbone(backbone, cfg.model)
        except ExportError as err:
            raise ExportError(
                f"{backbone.architecture} checkpoint vs {config_name}: {err}"
            ) from err

    if (args.gpus > 1 or args.nnodes > 1) and not distributed_child:
        return _torchrun(args, backbone_file, config_path, work_dir, data_root)
    return _train_and_test(cfg, args, config_name, backbone, backbone_file, data_root)


def _config_architecture(cfg: Any) -> str:
    """The backbone a config builds, named like exported architectures (``resnet18``)."""
    backbone = cfg.model.backbone
    if backbone.get("type") == "ResNet":
        return f"resnet{backbone.depth}"
    return str(backbone.get("model_name", backbone.get("type")))


def _train_and_test(
    cfg: Any,
    args: argparse.Namespace,
    config_name: str,
    backbone: Any | None,
    backbone_file: Path | None,
    data_root: Path,
) -> int:
    """Run mmengine's Runner (train, then test) and, on rank 0, write and print the results."""
    from mmengine.dist import get_world_size, is_main_process
    from mmengine.runner import Runner

    runner = Runner.from_cfg(cfg)
    start = time.perf_counter()
    runner.train()
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    metrics = runner.test()
    test_s = time.perf_counter() - start
    if not is_main_process():
        return 0

    meta = backbone.meta if backbone else {}
    optimizer = runner.optim_wrapper.optimizer
    loop = cfg.train_cfg
    results: dict[str, Any] = {
        **summarise(metrics),
        "config": config_name,
        "checkpoint": str(Path(args.checkpoint).resolve()) if args.checkpoint else None,
        "backbone_file": str(backbone_file) if backbone_file else None,
        "method": meta.get("method"),
        "architecture": backbone.architecture if backbone else _config_architecture(cfg),
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
    }
    results["markdown_row"] = markdown_row(results)
    work_dir = Path(cfg.work_dir)
    with open(work_dir / "results.json", "w") as f:
        json.dump(results, f, indent=2)
    print(f"\nresults written to {work_dir / 'results.json'}\n")
    print(markdown_table([results["markdown_row"]]))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m lightly_matrix.transfer`` (the torchrun entry point)."""
    parser = argparse.ArgumentParser(
        prog="lightly-matrix transfer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except UserError as err:
        print(f"lightly-matrix transfer: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
