"""One transfer run's mmengine config: ours, with data, weights, schedule and batch applied."""

from __future__ import annotations

import argparse
import copy
import os
from pathlib import Path
from typing import Any

from lightly_matrix.errors import UserError
from lightly_matrix.transfer.cfg_options import (
    check_cfg_options,
    parse_cfg_options,
    refuse_options,
    walk_dicts,
)
from lightly_matrix.transfer.configs import read_config


def inner_dataset(cfg: Any, split: str) -> Any:
    """The dataset that ``{split}_dataloader`` reads, inside its wrappers (RepeatDataset, ...)."""
    dataset = cfg[f"{split}_dataloader"]["dataset"]
    while "dataset" in dataset:
        dataset = dataset["dataset"]
    return dataset


def load_config(config_path: Path, data_root: Path) -> Any:
    """A config file with every dataloader and COCO evaluator pointed at ``data_root``."""
    cfg = read_config(config_path)
    root = str(Path(data_root).resolve()) + os.sep
    for split in ("train", "val", "test"):
        if not cfg.get(f"{split}_dataloader"):
            continue
        dataset = inner_dataset(cfg, split)
        dataset["data_root"] = root
        for metric in walk_dicts(cfg.get(f"{split}_evaluator")):
            if "ann_file" in metric:
                metric["ann_file"] = os.path.join(root, dataset["ann_file"])
    return cfg


def _scale_steps(scheduler: dict[str, Any], factor: float) -> None:
    """Scale a scheduler's iteration ``begin``, ``end`` and ``milestones`` by ``factor``."""
    for key in ("begin", "end"):
        if key in scheduler:
            scheduler[key] = round(scheduler[key] * factor)
    if "milestones" in scheduler:
        scheduler["milestones"] = [max(1, round(m * factor)) for m in scheduler["milestones"]]


def iteration_schedule(cfg: Any, max_iters: int) -> None:
    """Replace the schedule by ``max_iters`` iterations, lr steps scaled to fit (an iteration
    warm-up keeps its length, capped at a quarter of the run)."""
    loop = cfg.train_cfg
    epochs = loop.get("max_epochs") if loop.get("type") != "IterBasedTrainLoop" else None
    total = loop.get("max_iters") if loop.get("type") == "IterBasedTrainLoop" else None
    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=max_iters, val_interval=max_iters)
    schedulers = []
    for scheduler in cfg.get("param_scheduler") or []:
        scheduler = copy.deepcopy(dict(scheduler))
        by_epoch = scheduler.get("by_epoch", True)
        span = epochs if by_epoch else total
        if span and (by_epoch or scheduler.get("end", span) >= span):
            scheduler = {"begin": 0, "end": span, **scheduler, "by_epoch": False}
            _scale_steps(scheduler, max_iters / span)
            scheduler["end"] = min(max_iters, scheduler["end"])
        else:
            # An iteration warm-up longer than a quarter of a short run would be the whole run.
            scheduler["end"] = min(scheduler.get("end", max_iters), max(1, max_iters // 4))
        schedulers.append(scheduler)
    cfg.param_scheduler = schedulers
    for hook in cfg.get("custom_hooks") or []:
        if hook.get("type") == "PreciseBNHook":
            hook["num_iters"] = max(1, min(hook.get("num_iters", 200), max_iters))
    cfg.default_hooks.checkpoint = dict(
        type="CheckpointHook", by_epoch=False, interval=max_iters, max_keep_ckpts=1
    )
    if (logger := cfg.default_hooks.get("logger")) is not None:
        logger["interval"] = max(1, min(logger.get("interval", 50), max_iters // 5))
    cfg.log_processor = dict(cfg.get("log_processor") or {}, by_epoch=False)


def scale_iterations(cfg: Any, total_batch: int) -> None:
    """Stretch an iteration-based schedule stated at ``auto_scale_lr.base_batch_size`` images.

    Detectron2's ``REFERENCE_WORLD_SIZE`` rule (mmengine's ``auto_scale_lr`` scales only the lr):
    iterations, lr steps and intervals times ``base / total_batch``; epoch loops stay as is."""
    loop = cfg.train_cfg
    base = (cfg.get("auto_scale_lr") or {}).get("base_batch_size")
    if loop.get("type") != "IterBasedTrainLoop" or not base or total_batch == base:
        return
    factor = base / total_batch
    if not (checkpoint := cfg.default_hooks.get("checkpoint") or {}).get("by_epoch", True):
        checkpoint["interval"] = max(1, round(checkpoint.get("interval", loop.max_iters) * factor))
    for key in ("max_iters", "val_interval"):
        if loop.get(key):
            loop[key] = max(1, round(loop[key] * factor))
    for scheduler in cfg.get("param_scheduler") or []:
        if not scheduler.get("by_epoch", True):
            _scale_steps(scheduler, factor)


def add_report_outputs(cfg: Any) -> None:
    """The test also saves AP per category and its first images drawn, for the report."""
    import lightly_matrix.mmdet  # noqa: F401  (registers the metric and the hook in mmdet)
    from lightly_matrix.report.data import VIS_TEST_DIR

    for metric in walk_dicts(cfg.get("test_evaluator")):
        if metric.get("type") in ("CocoMetric", "mmdet.CocoMetric"):
            metric["type"] = "ClasswiseCocoMetric"
    hook = dict(cfg.default_hooks.get("visualization") or {"type": "DetVisualizationHook"})
    if hook.get("type") in ("DetVisualizationHook", "mmdet.DetVisualizationHook"):
        hook.update(type="FirstImagesVisualizationHook", draw=True, test_out_dir=VIS_TEST_DIR)
        cfg.default_hooks.visualization = hook


def build_config(
    args: argparse.Namespace,
    config_path: Path,
    work_dir: Path,
    data_root: Path,
    backbone: Any | None,
    backbone_file: Path | None,
) -> Any:
    """The run's mmengine ``Config`` (``backbone`` ``None``: random init)."""
    cfg = load_config(config_path, data_root)
    cfg.work_dir = str(work_dir)
    cfg.launcher = args.launcher
    if cfg.get("visualizer"):
        # mmengine reuses a named visualizer in a process: a second run would log into the first's.
        cfg.visualizer.pop("name", None)
    model = cfg.model
    if backbone is not None and backbone.family == "vit":
        if model.backbone.get("type") != backbone.backbone_cfg["type"]:
            raise UserError(
                f"{config_path.name} has a {model.backbone.get('type')} backbone, the"
                f" checkpoint a {backbone.architecture}; pass a ViT config"
            )
        model.backbone.update({k: v for k, v in backbone.backbone_cfg.items() if k != "type"})
    elif backbone is not None and args.demo:  # the demo's R18-FPN, resized to the checkpoint's
        depth, resnet = backbone.backbone_cfg["depth"], model.backbone
        if resnet.get("type") == "ResNet" and resnet.depth != depth:
            if model.get("neck") is None or (model.get("roi_head") or {}).get("shared_head"):
                raise UserError(
                    f"the config is for a ResNet-{resnet.depth}; pass a --config for ResNet-{depth}"
                )
            resnet.depth = depth
            model.neck.in_channels = [64 * (4 if depth >= 50 else 1) * 2**i for i in range(4)]
    # Backbone and a C4 shared head (res5) load the export; random init downloads no stock weights.
    pretrained = dict(type="Pretrained", checkpoint=str(backbone_file), prefix="backbone.")
    for part in filter(None, (model.backbone, (model.get("roi_head") or {}).get("shared_head"))):
        init = part.get("init_cfg")
        if backbone_file is not None:
            part.init_cfg = dict(pretrained)
        elif not (isinstance(init, dict) and init.get("type") == "PretrainedOrDefault"):
            part.init_cfg = None
    if args.batch_size is not None:
        cfg.train_dataloader.batch_size = args.batch_size
    cfg.auto_scale_lr = dict(cfg.get("auto_scale_lr") or {"base_batch_size": 16})
    cfg.auto_scale_lr["enable"] = not args.no_auto_scale_lr
    options = parse_cfg_options(args.cfg_options) if args.cfg_options else {}
    if args.max_iters is not None:
        iteration_schedule(cfg, args.max_iters)
    elif not args.no_auto_scale_lr:
        batch = options.get("train_dataloader.batch_size", cfg.train_dataloader.batch_size)
        # Processes: torchrun's WORLD_SIZE in its children, else the parent's gpus x nnodes.
        world = int(os.environ.get("WORLD_SIZE") or args.gpus * args.nnodes)
        if isinstance(batch, int) and batch >= 1:  # else check_cfg_options below says why
            scale_iterations(cfg, world * batch)
    if args.val_interval > 0:
        cfg.train_cfg.val_interval = args.val_interval
    else:
        # The final test on val2017 gives the reported numbers; no second pass over it.
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.randomness = dict(seed=args.seed)
    add_report_outputs(cfg)
    import lightly_matrix.transfer.guard  # noqa: F401  (registers DivergenceHook)

    cfg.custom_hooks = [*(cfg.get("custom_hooks") or []), dict(type="DivergenceHook")]
    import torch

    if not torch.cuda.is_available():
        cfg.env_cfg.dist_cfg = dict(backend="gloo")
        if args.launcher != "none":
            # torch's SyncBatchNorm needs CUDA; CPU processes (tests, debugging) use plain BN.
            for d in walk_dicts(cfg.model):
                if d.get("type") == "SyncBN":
                    d["type"] = "BN"
    if options:
        refuse_options(options)
        check_cfg_options(cfg, options)
        cfg.merge_from_dict(options)
    return cfg
