"""Table 2: pretraining throughput and the loss's share of a step; bf16-mixed stability.

Real training steps of the LightningModules (``lightly_matrix.methods.METHODS``; BYOL, the
yardstick, with the settings of Lightly's ImageNet benchmark) in a Lightning ``Trainer``
(bf16-mixed, channels_last, ``limit_train_batches``), fed from synthetic batches that already
sit on the device, so neither decoding nor augmentation bounds the numbers. Hyper-parameters are
the presets of the papers' ImageNet runs (``imagenet_r50``, ``imagenet_vitb16``) at batch 256.

Per step: CUDA events at ``on_train_batch_start`` / ``on_train_batch_end`` (the optimiser step
included). The loss: CUDA events around every call of the module's ``criterion`` inside the step
(forward only), and forward + backward of the same call re-run on its captured inputs, under the
same autocast; its share of the step is ``loss fwd+bwd x calls per step / step time``.

Stage ``stability`` trains our methods for ``stability_steps`` steps in bf16-mixed and checks
every loss value and, at the end, every parameter for NaN/inf.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from benchmarks.gpu.common import Budget, ResultStore, header, markdown_table, median, short_error
from benchmarks.gpu.train_harness import MASKED, method_settings, precision, release, train

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
    # BYOL as Lightly's ImageNet ResNet-50 benchmark runs it (its heads are the package defaults).
    "byol": {"optimizer": "lars", "lr": 0.45, "weight_decay": 1e-6, "momentum_start": 0.99},
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
    "byol": {"hidden_dim": 256, "output_dim": 64, "pred_hidden_dim": 256},
    "num_classes": 10,
    "warmup_steps": 1,
    "measure_steps": 1,
    "loss_repeats": 1,
    "stability_steps": 2,
    "check_every": 1,
    "assumed_step_s": 2.0,
    "setup_s": 5.0,
}


def throughput_row(method: str, cfg: dict[str, Any]) -> dict[str, Any]:
    arch, _ = method_settings(method, cfg)
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
        module, monitor, timed, peak = train(method, cfg, warmup + measure, warmup, 0.0)
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
    release()
    return row


def stability_row(method: str, cfg: dict[str, Any]) -> dict[str, Any]:
    arch, _ = method_settings(method, cfg)
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
        module, monitor, _, _ = train(method, cfg, steps, steps, warmup_epochs=0.1)
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
    release()
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
