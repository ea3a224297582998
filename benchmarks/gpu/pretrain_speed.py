"""Table 2: pretraining throughput and the loss's share of a step; bf16-mixed stability.

Real training steps of the LightningModules (``lightly_matrix.methods.METHODS`` and the BYOL
yardstick of :mod:`benchmarks.gpu.byol`) in a Lightning ``Trainer`` (bf16-mixed, channels_last,
``limit_train_batches``), fed from synthetic batches that already sit on the device, so neither
decoding nor augmentation bounds the numbers. Hyper-parameters are the presets of the papers'
ImageNet runs (``imagenet_r50``, ``imagenet_vitb16``) at batch 256.

Per step: CUDA events at ``on_train_batch_start`` / ``on_train_batch_end`` (the optimiser step
included). The loss: CUDA events around every call of the module's ``criterion`` inside the step
(forward only), and forward + backward of the same call re-run on its captured inputs, under the
same autocast; its share of the step is ``loss fwd+bwd x calls per step / step time``.

Stage ``stability`` trains our methods for ``stability_steps`` steps in bf16-mixed and checks
every loss value and, at the end, every parameter for NaN/inf.
"""

from __future__ import annotations

import gc
import json
import logging
import time
import warnings
from pathlib import Path
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
    timed_runs,
)

FULL: dict[str, Any] = {
    "device": "cuda",
    "precision": "bf16-mixed",
    "channels_last": True,
    "cnn": {"backbone": "resnet50", "image_size": 224, "batch_size": 256, "preset": "imagenet_r50"},
    "vit": {
        "backbone": "vit_base_patch16_224",
        "image_size": 224,
        "batch_size": 256,
        "preset": "imagenet_vitb16",
    },
    "byol": {},
    "num_classes": 1000,
    "methods": ["matrix_ssl", "corinfomax", "barlowtwins", "vicreg", "byol", "mae", "mmae"],
    "warmup_steps": 10,
    "measure_steps": 30,
    "loss_repeats": 20,
    "stability_methods": ["matrix_ssl", "corinfomax", "mmae"],
    "stability_steps": 1000,
    "check_every": 50,
    # Used to plan a stability run when the pretrain stage has not measured the step yet.
    "assumed_step_s": 0.5,
    "setup_s": 30.0,
}
DRY: dict[str, Any] = {
    **FULL,
    "device": "cpu",
    "cnn": {"backbone": "resnet18", "image_size": 32, "batch_size": 8, "preset": "digits"},
    "vit": {
        "backbone": "vit_tiny_patch16_224",
        "image_size": 32,
        "batch_size": 8,
        "preset": "digits",
    },
    "byol": {"hidden_dim": 256, "output_dim": 64},
    "num_classes": 10,
    "warmup_steps": 1,
    "measure_steps": 1,
    "loss_repeats": 1,
    "stability_steps": 2,
    "check_every": 1,
    "assumed_step_s": 2.0,
    "setup_s": 5.0,
}
#: Methods whose inputs are one masked view of a ViT.
MASKED = ("mae", "mmae", "umae")
#: Throughput goal: our methods against Barlow Twins in the same harness.
OURS_CNN = ("matrix_ssl", "corinfomax")


def precision(cfg: dict[str, Any]) -> str:
    """The configured precision; fp32 on a CPU without native bf16 (emulated: ~10x slower)."""
    import torch

    if cfg["device"] == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return "32-true"
    return cfg["precision"]


def _hparams(method: str, cfg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(architecture settings, constructor arguments) for one method."""
    from lightly_matrix.presets import PRESETS, RUN_KEYS

    arch = cfg["vit"] if method in MASKED else cfg["cnn"]
    hparams: dict[str, Any] = {}
    if method == "byol":
        hparams.update(cfg["byol"])
    else:
        preset = PRESETS[arch["preset"]].settings(method)
        hparams.update({k: v for k, v in preset.items() if k not in RUN_KEYS})
    hparams.update(
        backbone=arch["backbone"],
        image_size=arch["image_size"],
        batch_size_per_device=arch["batch_size"],
        num_classes=cfg["num_classes"],
    )
    return arch, hparams


def build_module(method: str, cfg: dict[str, Any], warmup_epochs: float) -> Any:
    from lightly_matrix.methods import METHODS

    _, hparams = _hparams(method, cfg)
    hparams["warmup_epochs"] = warmup_epochs
    if method == "byol":
        from benchmarks.gpu.byol import BYOL

        return BYOL(**hparams)
    return METHODS[method](**hparams)


def _loader(method: str, cfg: dict[str, Any], pool: int = 2) -> Any:
    """Endless batches already on the device: two noisy views of the same images (one for MAE)."""
    import torch
    from torch.utils.data import DataLoader, IterableDataset

    arch = cfg["cnn"] if method not in MASKED else cfg["vit"]
    b, s, device = arch["batch_size"], arch["image_size"], cfg["device"]
    fmt = torch.channels_last if cfg["channels_last"] else torch.contiguous_format
    generator = torch.Generator(device=device).manual_seed(0)
    batches = []
    for _ in range(pool):
        base = torch.rand(b, 3, s, s, device=device, generator=generator)
        views = [
            (base + 0.1 * torch.randn(b, 3, s, s, device=device, generator=generator))
            .sub_(0.45)
            .div_(0.25)
            .contiguous(memory_format=fmt)
            for _ in range(1 if method in MASKED else 2)
        ]
        targets = torch.randint(0, cfg["num_classes"], (b,), device=device, generator=generator)
        batches.append((views, targets))

    class Endless(IterableDataset):
        def __iter__(self):
            i = 0
            while True:
                yield batches[i % pool]
                i += 1

    return DataLoader(Endless(), batch_size=None)


class TimedCriterion:
    """Wraps ``module.criterion``: CUDA events around each call once ``record`` is set, and the
    first call's inputs kept for re-running the loss alone."""

    def __init__(self, inner: Any, device: str) -> None:
        self.inner, self.device = inner, device
        self.record = False
        self.calls: list[Any] = []
        self.inputs: list[Any] | None = None
        self.autocast_dtype: Any = None

    def __call__(self, *args: Any) -> Any:
        import torch

        if self.inputs is None:
            self.inputs = [(a.detach().clone(), a.requires_grad) for a in args]
            if torch.is_autocast_enabled(self.device):
                self.autocast_dtype = torch.get_autocast_dtype(self.device)
        if not self.record:
            return self.inner(*args)
        if self.device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            out = self.inner(*args)
            end.record()
            self.calls.append((start, end))
        else:
            t0 = time.perf_counter()
            out = self.inner(*args)
            self.calls.append(time.perf_counter() - t0)
        return out

    def forward_seconds(self) -> float:
        if self.device == "cuda":
            return sum(s.elapsed_time(e) for s, e in self.calls) / 1000
        return float(sum(self.calls))

    def standalone_seconds(self, repeats: int) -> float:
        """Median forward + backward of the captured call (a copy of the loss: no state change)."""
        import copy

        import torch

        assert self.inputs is not None
        loss_fn = copy.deepcopy(self.inner)
        enabled = self.autocast_dtype is not None

        def step():
            args = [t.detach().requires_grad_(g) for t, g in self.inputs]
            with torch.autocast(self.device, dtype=self.autocast_dtype, enabled=enabled):
                loss = loss_fn(*args)
            if loss.requires_grad:
                loss.backward()
            return loss

        times, _ = timed_runs(step, self.device, min(3, repeats), repeats)
        return median(times)


def _callback(cfg: dict[str, Any], warmup: int, timed: TimedCriterion | None) -> Any:
    import torch
    from pytorch_lightning import Callback

    device = cfg["device"]

    class StepMonitor(Callback):
        """Per-step timing after ``warmup`` steps; loss finiteness without a sync per step."""

        def __init__(self) -> None:
            self.starts: list[Any] = []
            self.ends: list[Any] = []
            self.nonfinite: Any = None
            self.first_nonfinite: int | None = None
            self.losses: dict[int, Any] = {}
            self.steps = 0

        def _mark(self) -> Any:
            if device == "cuda":
                event = torch.cuda.Event(enable_timing=True)
                event.record()
                return event
            return time.perf_counter()

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == warmup and timed is not None:
                timed.record = True
            if batch_idx >= warmup:
                self.starts.append(self._mark())

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if batch_idx >= warmup:
                self.ends.append(self._mark())
            loss = (outputs["loss"] if isinstance(outputs, dict) else outputs).detach()
            bad = (~torch.isfinite(loss)).int()
            self.nonfinite = bad if self.nonfinite is None else self.nonfinite + bad
            self.steps = batch_idx + 1
            if batch_idx == 0 or (batch_idx + 1) % cfg["check_every"] == 0:
                self.losses[batch_idx + 1] = loss.float()
                if int(self.nonfinite) > 0:  # the one sync: stop at the first sign of trouble
                    self.first_nonfinite = self.first_nonfinite or batch_idx + 1
                    trainer.should_stop = True

        def step_seconds(self) -> list[float]:
            if device == "cuda":
                torch.cuda.synchronize()
                pairs = zip(self.starts, self.ends, strict=True)
                return [s.elapsed_time(e) / 1000 for s, e in pairs]
            return [e - s for s, e in zip(self.starts, self.ends, strict=True)]

        def window_seconds(self) -> float:
            if device == "cuda":
                return self.starts[0].elapsed_time(self.ends[-1]) / 1000
            return self.ends[-1] - self.starts[0]

    return StepMonitor()


def _train(method: str, cfg: dict[str, Any], steps: int, warmup: int, warmup_epochs: float):
    """Builds the module and trains ``steps`` steps; returns (module, monitor, timed, peak MiB)."""
    import pytorch_lightning as pl
    import torch

    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    warnings.filterwarnings("ignore", ".*Your `IterableDataset` has `__len__`.*")
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    pl.seed_everything(0, verbose=False)
    module = build_module(method, cfg, warmup_epochs)
    if cfg["channels_last"]:
        module = module.to(memory_format=torch.channels_last)
    timed = None
    if getattr(module, "criterion", None) is not None:
        timed = TimedCriterion(module.criterion, cfg["device"])
        # Instance attribute lookups find nn.Module children first: replace the child itself.
        inner = module._modules.pop("criterion")
        module.add_module("_timed_criterion_inner", inner)
        object.__setattr__(module, "criterion", timed)
    monitor = _callback(cfg, warmup, timed)
    trainer = pl.Trainer(
        accelerator="gpu" if cfg["device"] == "cuda" else "cpu",
        devices=1,
        precision=precision(cfg),
        max_epochs=1,
        max_steps=steps,
        limit_train_batches=steps,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        benchmark=cfg["device"] == "cuda",  # cudnn autotuning, done within the warm-up steps
        callbacks=[monitor],
    )
    baseline = reset_peak(cfg["device"])
    trainer.fit(module, train_dataloaders=_loader(method, cfg))
    return module, monitor, timed, peak_mib(cfg["device"], baseline)


def _release() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def throughput_row(method: str, cfg: dict[str, Any]) -> dict[str, Any]:
    arch, _ = _hparams(method, cfg)
    row: dict[str, Any] = {
        "key": f"throughput|{method}",
        "method": method,
        "backbone": arch["backbone"],
        "image_size": arch["image_size"],
        "batch_size": arch["batch_size"],
        "views": 1 if method in MASKED else 2,
        "precision": precision(cfg),
        "channels_last": cfg["channels_last"],
        "device": cfg["device"],
    }
    warmup, measure = cfg["warmup_steps"], cfg["measure_steps"]
    try:
        module, monitor, timed, peak = _train(method, cfg, warmup + measure, warmup, 0.0)
        steps = monitor.step_seconds()
        step_s = median(steps)
        row.update(
            status="ok",
            steps_measured=len(steps),
            step_ms=1000 * step_s,
            images_per_s=arch["batch_size"] * len(steps) / monitor.window_seconds(),
            peak_mib=peak,
            finite=int(monitor.nonfinite) == 0,
        )
        if timed is not None and timed.calls:
            calls = len(timed.calls) / len(steps)
            loss_s = timed.standalone_seconds(cfg["loss_repeats"])
            row.update(
                loss_calls_per_step=calls,
                loss_fwd_in_step_ms=1000 * timed.forward_seconds() / len(steps),
                loss_fwd_bwd_ms=1000 * loss_s * calls,
                loss_share=loss_s * calls / step_s,
                loss_input_shape=list(timed.inputs[0][0].shape),
                loss_input_dtype=str(timed.inputs[0][0].dtype).replace("torch.", ""),
            )
        del module, monitor, timed
    except Exception as err:
        row.update(status="error", error=short_error(err))
    _release()
    return row


def stability_row(method: str, cfg: dict[str, Any]) -> dict[str, Any]:
    arch, _ = _hparams(method, cfg)
    steps = cfg["stability_steps"]
    row: dict[str, Any] = {
        "key": f"stability|{method}",
        "method": method,
        "backbone": arch["backbone"],
        "batch_size": arch["batch_size"],
        "precision": precision(cfg),
        "steps_planned": steps,
        "device": cfg["device"],
    }
    start = time.perf_counter()
    try:
        # A short warm-up, so that most of the run is at full learning rate.
        module, monitor, _, _ = _train(method, cfg, steps, steps, warmup_epochs=0.1)
        import torch

        params_finite = all(bool(torch.isfinite(p).all()) for p in module.parameters())
        nonfinite = int(monitor.nonfinite)
        row.update(
            status="ok",
            steps_run=monitor.steps,
            nonfinite_steps=nonfinite,
            first_nonfinite_step=monitor.first_nonfinite,
            params_finite=params_finite,
            loss_trace={str(k): float(v) for k, v in sorted(monitor.losses.items())},
            no_nan=nonfinite == 0 and params_finite and monitor.steps == steps,
            wall_s=time.perf_counter() - start,
        )
        del module, monitor
    except Exception as err:
        row.update(status="error", error=short_error(err), no_nan=False)
    _release()
    return row


def run_throughput(cfg: dict[str, Any], store: ResultStore, budget: Budget, dry_run: bool) -> bool:
    complete = True
    for method in cfg["methods"]:
        if store.get(f"throughput|{method}") is not None:
            continue
        if budget.left() < cfg["setup_s"] + 2 * cfg["assumed_step_s"] * (
            cfg["warmup_steps"] + cfg["measure_steps"]
        ):
            complete = False
            break
        row = store.add(throughput_row(method, cfg))
        print(f"[pretrain] {_describe(row)}", flush=True)
    store.set("complete", complete)
    store.save(markdown_throughput(store, dry_run))
    return complete


def _step_estimate(method: str, cfg: dict[str, Any], out_dir: Path) -> float:
    """Seconds per step: from the pretrain stage's results when they exist."""
    path = out_dir / "pretrain.json"
    if path.exists():
        for row in json.loads(path.read_text()).get("rows", []):
            if row.get("method") == method and row.get("status") == "ok":
                return row["step_ms"] / 1000
    return cfg["assumed_step_s"]


def run_stability(cfg: dict[str, Any], store: ResultStore, budget: Budget, dry_run: bool) -> bool:
    complete = True
    for method in cfg["stability_methods"]:
        if store.get(f"stability|{method}") is not None:
            continue
        estimate = cfg["setup_s"] + 1.1 * cfg["stability_steps"] * _step_estimate(
            method, cfg, store.out_dir
        )
        if budget.left() < estimate:
            print(
                f"[stability] {method}: ~{estimate:.0f} s needed, {budget.left():.0f} s left in "
                "this call; run the stage again to continue",
                flush=True,
            )
            complete = False
            break
        row = store.add(stability_row(method, cfg))
        verdict = "no NaN" if row.get("no_nan") else f"FAILED ({row.get('error', row)})"
        print(f"[stability] {method}: {row.get('steps_run', 0)} steps, {verdict}", flush=True)
    store.set("complete", complete)
    store.save(markdown_stability(store, dry_run))
    return complete


def _describe(row: dict[str, Any]) -> str:
    if row["status"] != "ok":
        return f"{row['method']}: {row['error']}"
    share = f", loss {100 * row['loss_share']:.1f}% of the step" if "loss_share" in row else ""
    return (
        f"{row['method']} ({row['backbone']}): {row['images_per_s']:.1f} images/s, step "
        f"{row['step_ms']:.1f} ms{share}"
    )


THROUGHPUT_COLUMNS = (
    ("method", "method"),
    ("backbone", "backbone"),
    ("batch_size", "batch"),
    ("views", "views"),
    ("precision", "precision"),
    ("images_per_s", "images/s"),
    ("step_ms", "step (ms, median)"),
    ("peak_gib", "peak memory (GiB)"),
    ("loss_fwd_bwd_ms", "loss fwd+bwd per step (ms)"),
    ("loss_share_pct", "loss share of step (%)"),
    ("vs_barlowtwins", "throughput vs Barlow Twins"),
    ("vs_byol", "throughput vs BYOL"),
    ("status", "status"),
    ("mode", "mode"),
)


def throughput_table_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with the derived columns (percentages, ratios to Barlow Twins and BYOL)."""
    by_method = {r["method"]: r for r in rows if r.get("status") == "ok"}
    out = []
    for r in rows:
        r = dict(r)
        if r.get("status") == "ok":
            r["peak_gib"] = r["peak_mib"] / 1024 if r.get("peak_mib") is not None else None
            if "loss_share" in r:
                r["loss_share_pct"] = 100 * r["loss_share"]
            for ref in ("barlowtwins", "byol"):
                if r["method"] not in MASKED and ref in by_method:
                    r[f"vs_{ref}"] = r["images_per_s"] / by_method[ref]["images_per_s"]
        else:
            r["status"] = f"error: {r.get('error', '')[:80]}"
        out.append(r)
    return out


def markdown_throughput(store: ResultStore, dry_run: bool) -> str:
    cfg = store.data["settings"]
    notes = [
        f"Lightning Trainer, {cfg['precision']} (fp32 on a CPU without bf16), channels_last="
        f"{cfg['channels_last']}, synthetic batches on the device; median of"
        f" {cfg['measure_steps']} steps after {cfg['warmup_steps']} warm-up (images/s: same"
        " window).",
        "Loss fwd+bwd: the criterion re-run alone on its captured in-step inputs (same autocast),"
        " times its calls per step; MAE has no matrix term (pixel loss only).",
    ]
    return (
        header("Pretraining throughput", store.data["env"], dry_run, notes)
        + "\n"
        + markdown_table(THROUGHPUT_COLUMNS, throughput_table_rows(store.rows))
        + "\n"
    )


STABILITY_COLUMNS = (
    ("method", "method"),
    ("backbone", "backbone"),
    ("precision", "precision"),
    ("steps_planned", "steps planned"),
    ("steps_run", "steps run"),
    ("nonfinite_steps", "non-finite losses"),
    ("params_finite", "parameters finite"),
    ("no_nan", "no NaN"),
    ("mode", "mode"),
)


def markdown_stability(store: ResultStore, dry_run: bool) -> str:
    cfg = store.data["settings"]
    notes = [
        f"{cfg['stability_steps']} training steps per method with the pretrain stage's settings "
        f"(warm-up 10% of the steps); loss checked every step, parameters at the end."
    ]
    return (
        header("bf16-mixed stability", store.data["env"], dry_run, notes)
        + "\n"
        + markdown_table(STABILITY_COLUMNS, store.rows)
        + "\n"
    )
