"""One transfer run's mmengine config: ours, with data, weights, schedule and batch applied."""

from __future__ import annotations

import argparse
import copy
import os
from pathlib import Path
from typing import Any

from lightly_matrix.errors import UserError
from lightly_matrix.transfer.cfg_options import check_cfg_options, parse_cfg_options


def walk_dicts(node: Any):
    """Every dict in a nested structure of dicts, lists and tuples (``node`` included)."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk_dicts(value)
    elif isinstance(node, list | tuple):
        for value in node:
            yield from walk_dicts(value)


def set_data_root(cfg: Any, root: str | Path) -> None:
    """Point every dataloader and COCO evaluator of ``cfg`` at ``root``."""
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
        for metric in walk_dicts(evaluator):
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


def iteration_schedule(cfg: Any, max_iters: int) -> None:
    """Replace the schedule by ``max_iters`` iterations, lr steps scaled to fit.

    An iteration warm-up keeps its length, capped at a quarter of the run.
    """
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
            scale = max_iters / span
            begin, end = scheduler.get("begin", 0), scheduler.get("end", span)
            scheduler.update(by_epoch=False, begin=round(begin * scale))
            scheduler["end"] = min(max_iters, round(end * scale))
            if "milestones" in scheduler:
                scheduler["milestones"] = [
                    max(1, round(m * scale)) for m in scheduler["milestones"]
                ]
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
    logger = cfg.default_hooks.get("logger")
    if logger is not None:
        logger["interval"] = max(1, min(logger.get("interval", 50), max_iters // 5))
    cfg.log_processor = dict(cfg.get("log_processor") or {}, by_epoch=False)


def scale_iterations(cfg: Any, total_batch: int) -> float:
    """Stretch an iteration-based schedule stated at ``auto_scale_lr.base_batch_size`` images.

    Detectron2's ``REFERENCE_WORLD_SIZE`` rule (mmengine's ``auto_scale_lr`` scales only the lr):
    iterations, lr steps and intervals times ``base / total_batch``. Epoch configs are left alone.

    Returns:
        The factor applied (1.0 when nothing changed).
    """
    loop = cfg.train_cfg
    base = (cfg.get("auto_scale_lr") or {}).get("base_batch_size")
    if loop.get("type") != "IterBasedTrainLoop" or not base or total_batch == base:
        return 1.0
    factor = base / total_batch

    def scaled(value: int) -> int:
        return max(1, round(value * factor))

    total = loop.max_iters
    loop.max_iters = scaled(total)
    if loop.get("val_interval"):
        loop.val_interval = scaled(loop.val_interval)
    for scheduler in cfg.get("param_scheduler") or []:
        if scheduler.get("by_epoch", True):
            continue
        for key in ("begin", "end"):
            if key in scheduler:
                scheduler[key] = round(scheduler[key] * factor)
        if "milestones" in scheduler:
            scheduler["milestones"] = [scaled(m) for m in scheduler["milestones"]]
    checkpoint = cfg.default_hooks.get("checkpoint")
    if checkpoint is not None and not checkpoint.get("by_epoch", True):
        checkpoint["interval"] = scaled(checkpoint.get("interval", total))
    return factor


def world_size(args: argparse.Namespace) -> int:
    """Processes of the run: torchrun's ``WORLD_SIZE`` in its children, else gpus x nnodes."""
    return int(os.environ.get("WORLD_SIZE") or args.gpus * args.nnodes)


def _set_pretrained(model: Any, backbone_file: Path) -> None:
    """Load ``backbone_file`` into the backbone and, for C4 models, the RoI shared head (res5)."""
    pretrained = dict(type="Pretrained", checkpoint=str(backbone_file), prefix="backbone.")
    model.backbone.init_cfg = pretrained
    shared = model.get("roi_head", {}).get("shared_head")
    if shared is not None:
        shared.init_cfg = dict(pretrained)


#: Test images drawn for ``lightly-matrix report`` (the first ones of the test split).
REPORT_IMAGES = 6


def add_report_outputs(cfg: Any) -> None:
    """The test also saves AP per category and the first test images drawn, for the report."""
    import lightly_matrix.mmdet  # noqa: F401  (registers the metric and the hook in mmdet)
    from lightly_matrix.report.data import VIS_TEST_DIR

    for metric in walk_dicts(cfg.get("test_evaluator")):
        if metric.get("type") in ("CocoMetric", "mmdet.CocoMetric"):
            metric["type"] = "ClasswiseCocoMetric"
    hook = dict(cfg.default_hooks.get("visualization") or {})
    if hook.get("type", "DetVisualizationHook") in (
        "DetVisualizationHook",
        "mmdet.DetVisualizationHook",
    ):
        cfg.default_hooks.visualization = dict(
            hook,
            type="FirstImagesVisualizationHook",
            draw=True,
            max_images=REPORT_IMAGES,
            test_out_dir=VIS_TEST_DIR,
        )


def load_config(config_path: Path, data_root: Path) -> Any:
    """A config file with its datasets and evaluators pointed at ``data_root``."""
    from mmengine.config import Config

    cfg = Config.fromfile(str(config_path))
    set_data_root(cfg, data_root)
    return cfg


#: Option names that place files: only ``--work-dir`` does, through its checks.
OUTPUT_KEYS = frozenset(
    {"work_dir", "out_dir", "outfile_prefix", "test_out_dir", "save_dir", "log_dir", "out_file"}
)
#: What loads weights besides the checked CHECKPOINT, and what imports code.
WEIGHT_KEYS = frozenset({"init_cfg", "load_from", "pretrained"})


def refuse_options(options: dict[str, Any]) -> None:
    """Refuse ``--cfg-options`` that write outside ``--work-dir``, load weights or import code."""
    for key, value in options.items():
        names = set(key.split(".")) | {k for d in walk_dicts(value) for k in d}
        if names & OUTPUT_KEYS:
            raise UserError(
                f"--cfg-options {key}: transfer writes everything under --work-dir (checked so"
                " that no one's files are overwritten); choose the place with --work-dir"
            )
        if names & WEIGHT_KEYS:
            raise UserError(
                f"--cfg-options {key}: transfer loads pretrained weights from its CHECKPOINT"
                " argument (exported and checked against the config); such options are for"
                " mmdet's own tools/train.py"
            )
        if "custom_imports" in names:
            raise UserError(
                f"--cfg-options {key}: transfer imports no module named on its command line"
                " (it would run that module's code); register your modules in a --config file"
            )


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
        assert backbone_file is not None
        _set_pretrained(model, backbone_file)
    else:
        # Stock configs name torchvision:// weights; random-init runs download nothing.
        for part in (model.backbone, (model.get("roi_head") or {}).get("shared_head")):
            init = (part or {}).get("init_cfg")
            if part is not None and not (
                isinstance(init, dict) and init.get("type") == "PretrainedOrDefault"
            ):
                part["init_cfg"] = None
    if args.batch_size is not None:
        cfg.train_dataloader.batch_size = args.batch_size
    cfg.auto_scale_lr = dict(cfg.get("auto_scale_lr") or {"base_batch_size": 16})
    cfg.auto_scale_lr["enable"] = not args.no_auto_scale_lr
    options = parse_cfg_options(args.cfg_options) if args.cfg_options else {}
    if args.max_iters is not None:
        iteration_schedule(cfg, args.max_iters)
    elif not args.no_auto_scale_lr:
        batch = options.get("train_dataloader.batch_size", cfg.train_dataloader.batch_size)
        if isinstance(batch, int) and batch >= 1:  # else check_cfg_options below says why
            scale_iterations(cfg, world_size(args) * batch)
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
