"""The training harness of the pretrain and stability stages.

Builds a method's LightningModule from the papers' presets, feeds it synthetic batches that
already sit on the device, and trains it in a Lightning ``Trainer`` for a given number of steps
while :class:`TimedCriterion` times the module's loss calls and a callback times every step and
watches the loss for NaN/inf without a device sync per step.
"""

from __future__ import annotations

import gc
import logging
import time
import warnings
from typing import Any

from benchmarks.gpu.common import median, peak_mib, reset_peak, timed_runs

#: Methods whose inputs are one masked view of a ViT.
MASKED = ("mae", "mmae", "umae")


def precision(cfg: dict[str, Any]) -> str:
    """The configured precision; fp32 on a CPU without native bf16 (emulated: ~10x slower)."""
    import torch

    if cfg["device"] == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return "32-true"
    return cfg["precision"]


def method_settings(method: str, cfg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
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
    from lightly_matrix.methods import METHOD_CLASSES

    _, hparams = method_settings(method, cfg)
    hparams["warmup_epochs"] = warmup_epochs
    return METHOD_CLASSES[method](**hparams)


def synthetic_loader(method: str, cfg: dict[str, Any], pool: int = 2) -> Any:
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


def step_monitor(cfg: dict[str, Any], warmup: int, timed: TimedCriterion | None) -> Any:
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


def train(method: str, cfg: dict[str, Any], steps: int, warmup: int, warmup_epochs: float):
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
    monitor = step_monitor(cfg, warmup, timed)
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
    trainer.fit(module, train_dataloaders=synthetic_loader(method, cfg))
    return module, monitor, timed, peak_mib(cfg["device"], baseline)


def release() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
