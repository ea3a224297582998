"""Table 3: Mask R-CNN training iterations/s with our ``mmdet_configs``, AMP off and on.

The model and optimiser are built from the config exactly as mmengine's ``Runner`` builds them
(registry build, ``init_weights``, SyncBN reverted to BN on one process, ``build_optim_wrapper``
with ``OptimWrapper`` or ``AmpOptimWrapper``), and each iteration is ``model.train_step(batch,
optim_wrapper)``: data preprocessing (normalise, pad, pad masks), forward, losses, backward and the
SGD step, i.e. what the ``IterBasedTrainLoop`` runs. Batches are generated in memory with mmdet's
own ``demo_mm_inputs`` (random images of COCO size after the protocol's resize, short side 800,
with boxes and bitmap masks), so image decoding does not bound the numbers.
"""

from __future__ import annotations

import copy
import gc
import time
from typing import Any

from benchmarks.gpu.common import (
    Budget,
    ResultStore,
    header,
    markdown_table,
    median,
    peak_mib,
    reset_peak,
    short_error,
)

FULL: dict[str, Any] = {
    "device": "cuda",
    "configs": ["mask-rcnn_r50_fpn_ms-1x_coco", "mask-rcnn_r50-c4_ms-1x_coco"],
    # A 640 x 480 COCO image resized to short side 800 (the largest multi-scale step).
    "image_shape": (3, 800, 1067),
    "batch_size": 2,
    "objects_per_image": 7,
    "num_classes": 80,
    "amp": [False, True],
    "warmup_iters": 5,
    "measure_iters": 20,
    "assumed_iter_s": 0.6,
    "setup_s": 20.0,
    # Config entries replaced before building (the protocol's own in the measurement).
    "overrides": {},
}
DRY: dict[str, Any] = {
    **FULL,
    "device": "cpu",
    "configs": ["mask-rcnn_r18_fpn_ms-1x_coco", "mask-rcnn_r18-c4_ms-1x_coco"],
    "image_shape": (3, 96, 128),
    "objects_per_image": 3,
    # Few proposals and RoI samples: the protocol's 512 RoIs through res5 take minutes on a CPU.
    "overrides": {
        "model.train_cfg.rpn_proposal.nms_pre": 200,
        "model.train_cfg.rpn_proposal.max_per_img": 20,
        "model.train_cfg.rcnn.sampler.num": 8,
    },
    "warmup_iters": 1,
    "measure_iters": 1,
    "assumed_iter_s": 3.0,
    "setup_s": 5.0,
}


def _batches(cfg: dict[str, Any], pool: int = 1) -> list[dict[str, Any]]:
    """Packed batches as a dataloader would yield them, images already on the device."""
    from mmdet.testing import demo_mm_inputs

    batches = []
    for _ in range(pool):
        data = demo_mm_inputs(
            batch_size=cfg["batch_size"],
            image_shapes=tuple(cfg["image_shape"]),
            num_items=[cfg["objects_per_image"]] * cfg["batch_size"],
            num_classes=cfg["num_classes"],
            with_mask=True,
            use_box_type=True,
        )
        data["inputs"] = [img.to(cfg["device"]) for img in data["inputs"]]
        batches.append(data)
    return batches


def _mmcv_cuda_ops() -> bool:
    from mmcv.ops import get_compiling_cuda_version

    return get_compiling_cuda_version() not in ("", "not available")


def build(config: str, amp: bool, cfg: dict[str, Any]) -> tuple[Any, Any]:
    """(model, optim wrapper) from one of our configs, as mmengine's Runner builds them."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    from mmengine.logging import MMLogger
    from mmengine.model import revert_sync_batchnorm
    from mmengine.optim import build_optim_wrapper

    from lightly_matrix.transfer import resolve_config

    register_all_modules(init_default_scope=True)
    # init_weights reports every parameter at INFO level; a WARNING-level current logger hushes it.
    MMLogger.get_instance("gpu_suite", log_level="WARNING")
    conf = Config.fromfile(str(resolve_config(config)))
    conf.merge_from_dict(cfg["overrides"])
    conf.model.backbone.init_cfg = None  # random init: no download
    model = MODELS.build(conf.model)
    model.init_weights()
    # One process: mmengine's Runner reverts SyncBN to BN in the same way.
    model = revert_sync_batchnorm(model).to(cfg["device"])
    model.train()
    optim = copy.deepcopy(conf.optim_wrapper)
    # lr scaled to the batch as auto_scale_lr does (base batch 16).
    optim.optimizer.lr = optim.optimizer.lr * cfg["batch_size"] / 16
    if amp:
        optim.type = "AmpOptimWrapper"
        optim.loss_scale = "dynamic"
    return model, build_optim_wrapper(model, optim)


def measure(config: str, amp: bool, cfg: dict[str, Any]) -> dict[str, Any]:
    import torch

    device = cfg["device"]
    row: dict[str, Any] = {
        "key": f"{config}|amp={amp}",
        "config": config,
        "amp": amp,
        "batch_size": cfg["batch_size"],
        "image_shape": "x".join(str(v) for v in cfg["image_shape"][1:]),
        "device": device,
    }
    if amp and device != "cuda":
        return {**row, "status": "skipped", "error": "AmpOptimWrapper needs a CUDA device"}
    if device == "cuda" and not _mmcv_cuda_ops():
        return {
            **row,
            "status": "error",
            "error": "mmcv's ops were compiled without CUDA (RoIAlign/NMS cannot run on the GPU);"
            " re-run the install stage on a machine with nvcc matching torch's CUDA",
        }
    torch.manual_seed(0)
    try:
        batches = _batches(cfg)
        model, optim_wrapper = build(config, amp, cfg)
        baseline = reset_peak(device)
        times, finite = [], True
        total = cfg["warmup_iters"] + cfg["measure_iters"]
        for i in range(total):
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            log_vars = model.train_step(batches[i % len(batches)], optim_wrapper)
            if device == "cuda":
                torch.cuda.synchronize()
            if i >= cfg["warmup_iters"]:
                times.append(time.perf_counter() - start)
            finite = finite and bool(torch.isfinite(log_vars["loss"]).all())
        iter_s = median(times)
        row.update(
            status="ok",
            iters_measured=len(times),
            iter_ms=1000 * iter_s,
            iters_per_s=1.0 / iter_s,
            images_per_s=cfg["batch_size"] / iter_s,
            peak_mib=peak_mib(device, baseline),
            finite=finite,
            loss=float(log_vars["loss"]),
        )
        del model, optim_wrapper, batches
    except Exception as err:
        row.update(status="error", error=short_error(err))
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    return row


def run(cfg: dict[str, Any], store: ResultStore, budget: Budget, dry_run: bool) -> bool:
    complete = True
    for config in cfg["configs"]:
        for amp in cfg["amp"]:
            if store.get(f"{config}|amp={amp}") is not None:
                continue
            need = cfg["setup_s"] + 2 * cfg["assumed_iter_s"] * (
                cfg["warmup_iters"] + cfg["measure_iters"]
            )
            if budget.left() < need:
                complete = False
                break
            row = store.add(measure(config, amp, cfg))
            what = f"{config} amp={amp}"
            if row["status"] == "ok":
                print(f"[mmdet] {what}: {row['iters_per_s']:.2f} it/s", flush=True)
            else:
                print(f"[mmdet] {what}: {row['status']} ({row['error']})", flush=True)
    store.set("complete", complete)
    store.save(markdown(store, dry_run))
    return complete


COLUMNS = (
    ("config", "config"),
    ("amp", "AMP (fp16)"),
    ("batch_size", "batch"),
    ("image_shape", "image (h x w)"),
    ("iters_per_s", "iterations/s"),
    ("iter_ms", "iteration (ms, median)"),
    ("peak_gib", "peak memory (GiB)"),
    ("finite", "finite loss"),
    ("status", "status"),
    ("mode", "mode"),
)


def markdown(store: ResultStore, dry_run: bool) -> str:
    cfg = store.data["settings"]
    notes = [
        f"model.train_step on in-memory batches ({cfg['objects_per_image']} objects with masks per"
        f" image); median of {cfg['measure_iters']} iterations after {cfg['warmup_iters']}"
        " warm-up, synchronised wall clock. SyncBN runs as BN on one process."
    ]
    rows = []
    for r in store.rows:
        r = dict(r)
        if r.get("peak_mib") is not None:
            r["peak_gib"] = r["peak_mib"] / 1024
        if r["status"] != "ok":
            r["status"] = f"{r['status']}: {r.get('error', '')[:60]}"
        rows.append(r)
    return (
        header("Mask R-CNN training speed", store.data["env"], dry_run, notes)
        + "\n"
        + markdown_table(COLUMNS, rows)
        + "\n"
    )
