"""Training step of the pretraining methods: images/s, peak memory, the loss's share of the step.

Each method's LightningModule as Lightly's benchmark harness builds it (``METHOD_CLASSES[name]``
at its paper defaults, batch 256) trains in a Lightning ``Trainer`` (bf16-mixed) on synthetic
batches already on the GPU, so that neither decoding nor augmentation bounds the numbers.
images/s: Lightning's ``ThroughputMonitor`` over the steps after the warm-up; peak memory:
``torch.cuda.max_memory_allocated``. The loss: a forward hook captures the inputs of the
module's ``criterion`` in the step, whose forward + backward is then timed alone
(``torch.utils.benchmark.Timer``, same autocast); share = that x calls per step / step time.

    python -m benchmarks.gpu.train_step --methods matrix_ssl byol corinfomax barlowtwins
    python -m benchmarks.gpu.train_step --backbone vit_base_patch16_224 --methods mmae mae
"""

from __future__ import annotations

import copy
import gc
import inspect
import logging
import sys
import warnings
from typing import Any

from benchmarks.gpu.common import markdown_table, parser, peak_mib, peak_start, resolve, write
from benchmarks.gpu.common import short_error as _error

COLUMNS = [
    ("method", "method"),
    ("backbone", "backbone"),
    ("batch", "batch"),
    ("views", "views"),
    ("images_per_s", "images/s"),
    ("step_ms", "step (ms)"),
    ("peak_gib", "peak memory (GiB)"),
    ("loss_calls", "loss calls/step"),
    ("loss_ms", "loss fwd+bwd/call (ms)"),
    ("loss_share_pct", "loss share of step (%)"),
]
#: The yardsticks: each method's images/s as a fraction of theirs, where they ran.
REFERENCES = ("byol", "barlowtwins", "mae")
#: Head sizes of a dry run, given to the methods that take them: CPU-sized.
DRY_RUN_HEADS = {"hidden_dim": 64, "output_dim": 32, "pred_hidden_dim": 32, "decoder_dim": 32}


def synthetic_batches(name: str, args: Any, device: str, steps: int) -> Any:
    """``steps`` batches of ``(views, targets)`` on the device; as many views as the method's
    harness transform makes."""
    import torch
    from PIL import Image
    from torch.utils.data import DataLoader

    from lightly_matrix.methods import METHODS

    n_views = len(METHODS[name]["transform"](Image.new("RGB", (64, 64))))
    g = torch.Generator(device).manual_seed(0)
    shape = (args.batch, 3, args.image_size, args.image_size)
    views = [torch.randn(shape, device=device, generator=g) for _ in range(n_views)]
    targets = torch.randint(0, 1000, (args.batch,), device=device, generator=g)
    batches = [(views, targets)] * steps  # a list is a map-style data set
    return DataLoader(batches, batch_size=None), n_views  # type: ignore[arg-type]


def loss_ms(criterion: Any, captured: dict[str, Any], device: str, min_run_time: float) -> float:
    """Median forward + backward of the criterion alone on its captured in-step inputs."""
    import torch
    from torch.utils.benchmark import Timer

    loss_fn = copy.deepcopy(criterion)  # a stateful loss (CorInfoMax) keeps its own state

    def step() -> None:
        inputs = [t.detach().requires_grad_(grad) for t, grad in captured["args"]]
        with torch.autocast(device, captured["dtype"], captured["autocast"]):
            loss = loss_fn(*inputs, **captured["kwargs"])
        if loss.requires_grad:
            loss.backward()

    timer = Timer("step()", globals={"step": step}, num_threads=torch.get_num_threads())
    return 1e3 * timer.blocked_autorange(min_run_time=min_run_time).median


def train(name: str, args: Any, device: str, row: dict[str, Any]) -> None:
    """Trains ``name`` for the warm-up and timed steps, then times its loss; fills ``row``."""
    import pytorch_lightning as pl
    import torch
    from pytorch_lightning.callbacks import ThroughputMonitor
    from pytorch_lightning.loggers.logger import DummyLogger
    from pytorch_lightning.profilers import PyTorchProfiler

    from lightly_matrix.methods import METHOD_CLASSES

    pl.seed_everything(0, verbose=False)
    loader, row["views"] = synthetic_batches(name, args, device, args.warmup + args.steps)
    cls = METHOD_CLASSES[name]
    own = inspect.signature(cls).parameters
    small = {k: v for k, v in DRY_RUN_HEADS.items() if k in own} if args.dry_run else {}
    module = cls(
        backbone=args.backbone,
        batch_size_per_device=args.batch,
        image_size=args.image_size,
        **small,
    )
    captured: dict[str, Any] = {}
    calls = []

    def capture(_module: Any, inputs: tuple, kwargs: dict, _output: Any) -> None:
        if not captured:
            captured["args"] = [(t.detach().clone(), t.requires_grad) for t in inputs]
            captured["kwargs"] = kwargs
            captured["autocast"] = torch.is_autocast_enabled(device)
            captured["dtype"] = torch.get_autocast_dtype(device)
        calls.append(1)

    criterion = getattr(module, "criterion", None)
    hook = None if criterion is None else criterion.register_forward_hook(capture, with_kwargs=True)
    profiler = args.profile and PyTorchProfiler(
        dirpath=args.out,
        filename=f"profile-{args.backbone}-{name}",
        export_to_chrome=False,
        row_limit=40,
        sort_by_key="cuda_time_total" if device == "cuda" else "cpu_time_total",
    )
    # The window: the steps after the warm-up (one time point more than steps).
    monitor = ThroughputMonitor(batch_size_fn=lambda b: len(b[1]), window_size=args.steps + 1)
    trainer = pl.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=1,
        precision=args.precision,
        max_steps=args.warmup + args.steps,
        logger=DummyLogger(),  # ThroughputMonitor reports through a logger
        log_every_n_steps=1,
        callbacks=[monitor],
        profiler=profiler or None,
        benchmark=device == "cuda",
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    start = peak_start(device)
    trainer.fit(module, train_dataloaders=loader)
    peak = peak_mib(device, start)
    row["peak_gib"] = None if peak is None else peak / 1024
    row["images_per_s"] = float(trainer.logged_metrics["train/device/samples_per_sec"])
    row["step_ms"] = 1e3 / float(trainer.logged_metrics["train/device/batches_per_sec"])
    if hook is not None:
        hook.remove()
        row["loss_calls"] = len(calls) / (args.warmup + args.steps)
        row["loss_ms"] = loss_ms(criterion, captured, device, args.loss_time)
        row["loss_share_pct"] = 100 * row["loss_ms"] * row["loss_calls"] / row["step_ms"]


def measure(name: str, args: Any, device: str) -> dict[str, Any]:
    """One row; an error (out of memory, a missing kernel) is named in it, the others still run."""
    import torch

    row: dict[str, Any] = {"method": name, "backbone": args.backbone, "batch": args.batch}
    try:
        train(name, args, device, row)
        row["status"] = "ok"
    except Exception as err:
        row["status"] = f"error: {_error(err)}"
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    return row


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--methods", nargs="+", default=["matrix_ssl", "byol", "corinfomax"])
    p.add_argument("--backbone", default="resnet50", help="resnet50 or a timm ViT name")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--precision", default="bf16-mixed", help="Lightning's precision")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps, >= 1 (cudnn tuning)")
    p.add_argument("--steps", type=int, default=30, help="timed steps")
    p.add_argument("--loss-time", type=float, default=1.0, help="seconds timing the loss alone")
    p.add_argument("--profile", action="store_true", help="PyTorchProfiler summary (slows down)")
    args = p.parse_args(argv)
    if args.warmup < 1 or args.steps < 1:
        p.error("--warmup and --steps must be >= 1 (the window starts after a warm-up step)")
    device = resolve(args)
    if args.dry_run:
        args.backbone = "resnet18" if args.backbone.startswith("resnet") else "vit_tiny_patch16_224"
        args.batch, args.image_size, args.warmup, args.steps, args.loss_time = 8, 32, 1, 1, 0.05
    warnings.filterwarnings("ignore", ".*(num_workers|flops_per_batch|LeafSpec).*")
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    rows = [measure(name, args, device) for name in args.methods]
    ok = {r["method"]: r for r in rows if r["status"] == "ok"}
    refs = [ref for ref in REFERENCES if ref in ok]
    for r in ok.values():
        for ref in refs:
            r[f"vs_{ref}"] = r["images_per_s"] / ok[ref]["images_per_s"]
    columns = [*COLUMNS, *((f"vs_{ref}", f"images/s vs {ref}") for ref in refs)]
    columns.append(("status", "status"))
    notes = [
        f"{args.precision}, batch {args.batch}, {args.image_size} px, synthetic batches on the"
        f" device; {args.steps} timed steps after {args.warmup}."
        + (" Profiled (PyTorchProfiler): slower than unprofiled." if args.profile else ""),
        "Loss: forward + backward of the criterion alone on its in-step inputs (same autocast);"
        " share = loss x calls per step / step. MAE has no criterion (pixel loss only).",
    ]
    name = f"train_step-{args.backbone}"
    title = f"Training step, {args.backbone}"
    write(args, name, title, rows, markdown_table(columns, rows), device, notes)
    return 0 if len(ok) == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
