"""Table 1: loss cost, forward + backward, fp32 and bf16 autocast, plus a short profile.

Ours (``MatrixSSLLoss``, ``MatrixEntropyLoss``, ``CorInfoMaxLoss``) against the straightforward
d x d forms (the test suite's references in ``tests/reference_losses.py``) and Lightly's
``BarlowTwinsLoss`` and ``VICRegLoss``. Each cell: fresh inputs of shape (m, d) (bf16 in the bf16
rows, as a projection head under autocast produces them), ``warmup`` untimed calls, then the
median of ``repeats`` timed calls (CUDA events) and the peak allocated memory above the inputs.
Stage ``loss-compile`` times ours under ``torch.compile`` the same way.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from typing import Any

from benchmarks.gpu.common import (
    ROOT,
    Budget,
    ResultStore,
    fmt,
    header,
    median,
    peak_mib,
    reset_peak,
    short_error,
    timed_runs,
)
from lightly_matrix.utils.text import markdown_row, markdown_table

# The references live with the tests; they are the straightforward formulas.
sys.path.insert(0, str(ROOT / "tests"))

FULL = {
    "device": "cuda",
    "sizes": [(256, 2048), (1024, 2048), (4096, 8192), (256, 8192)],
    "precisions": ["fp32", "bf16"],
    "warmup": 5,
    "repeats": 20,
    "min_repeats": 5,
    "cell_budget_s": 25.0,
    "profile_size": (4096, 8192),
    "profile_precision": "bf16",
    "compile_backend": "inductor",
    "compile_precisions": ["fp32", "bf16"],
}
DRY = {
    "device": "cpu",
    "sizes": [(32, 64)],
    "precisions": ["fp32", "bf16"],
    "warmup": 1,
    "repeats": 2,
    "min_repeats": 1,
    "cell_budget_s": 10.0,
    "profile_size": (32, 64),
    "profile_precision": "bf16",
    # Exercises torch.compile's tracing without a C++/Triton build on a CI machine.
    "compile_backend": "eager",
    "compile_precisions": ["fp32"],
}

#: name -> (label, family)
LOSSES: dict[str, tuple[str, str]] = {
    "matrix_ssl": ("MatrixSSLLoss (Taylor 4)", "ours"),
    "matrix_entropy": ("MatrixEntropyLoss (M-MAE TCR)", "ours"),
    "corinfomax": ("CorInfoMaxLoss (running D x D cov)", "ours"),
    "matrix_ssl_dense": ("Matrix-SSL, straightforward d x d", "d x d form"),
    "matrix_entropy_dense": ("M-MAE TCR, straightforward d x d logdet", "d x d form"),
    "corinfomax_dense": ("CorInfoMax, straightforward reference", "d x d form"),
    "barlowtwins": ("Lightly BarlowTwinsLoss", "lightly"),
    "vicreg": ("Lightly VICRegLoss", "lightly"),
}
OURS = ("matrix_ssl", "matrix_entropy", "corinfomax")
#: Each of ours against its straightforward form.
DENSE_OF = {name: f"{name}_dense" for name in OURS}


def build_loss(name: str, d: int, device: str) -> Callable[[Any, Any], Any]:
    """A callable ``(online, target) -> scalar`` for one loss at embedding size ``d``."""
    import torch
    from lightly.loss import BarlowTwinsLoss, VICRegLoss
    from reference_losses import CorInfoMaxReference, matrix_ssl_reference, tcr_reference

    from lightly_matrix.loss import CorInfoMaxLoss, MatrixEntropyLoss, MatrixSSLLoss

    if name == "matrix_ssl":
        loss = MatrixSSLLoss()
        return lambda a, b: loss(a, b)
    if name == "matrix_entropy":
        entropy = MatrixEntropyLoss()
        return lambda a, b: entropy(a)
    if name == "corinfomax":
        cim = CorInfoMaxLoss(d).to(device)
        return lambda a, b: cim(a, b)
    if name == "barlowtwins":
        return BarlowTwinsLoss()
    if name == "vicreg":
        return VICRegLoss()
    # The references build their matrices with torch.eye(...) and no device: a device context
    # puts them where the inputs are.
    if name == "corinfomax_dense":
        with torch.device(device):
            ref = CorInfoMaxReference(d, 250.0, 0.01, 0.01, 1.0, 1e-8)

        def corinfomax_dense(a, b):
            with torch.device(device):
                return ref.step(a, b)

        return corinfomax_dense
    if name == "matrix_ssl_dense":

        def matrix_ssl_dense(a, b):
            with torch.device(device):
                return matrix_ssl_reference(a, b, 1.0, 1.0, 1.0, 4)

        return matrix_ssl_dense
    if name == "matrix_entropy_dense":

        def matrix_entropy_dense(a, b):
            with torch.device(device):
                return tcr_reference(a, 1.0, False)

        return matrix_entropy_dense
    raise KeyError(name)


def _autocast(device: str, precision: str) -> contextlib.AbstractContextManager:
    import torch

    return torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bf16")


def _wall(step: Callable[[], Any], device: str) -> float:
    import torch

    start = time.perf_counter()
    step()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def measure_cell(
    name: str, m: int, d: int, precision: str, cfg: dict[str, Any], compiled: bool = False
) -> dict[str, Any]:
    """Times one (loss, m, d, precision) cell; errors become a row with ``status`` set."""
    import torch

    device = cfg["device"]
    label, family = LOSSES[name]
    row: dict[str, Any] = {
        "key": f"{name}|{m}x{d}|{precision}|{'compiled' if compiled else 'eager'}",
        "loss": name,
        "label": label + (" [torch.compile]" if compiled else ""),
        "family": family + (" (compiled)" if compiled else ""),
        "m": m,
        "d": d,
        "precision": precision,
        "compiled": compiled,
        "device": device,
    }
    torch.manual_seed(0)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    base = torch.randn(m, d, device=device)
    online = base.to(dtype)
    target = (base + 0.5 * torch.randn(m, d, device=device)).to(dtype)
    fn = build_loss(name, d, device)
    if compiled:
        fn = torch.compile(fn, backend=cfg["compile_backend"], dynamic=False)

    def step():
        x = online.detach().requires_grad_(True)
        with _autocast(device, precision):
            loss = fn(x, target)
        loss.backward()
        return loss

    baseline = reset_peak(device)
    try:
        # The first call holds torch.compile's compile time; the next one estimates the cost.
        row["first_call_s"] = _wall(step, device)
        per_call = _wall(step, device) if compiled else row["first_call_s"]
        repeats = cfg["repeats"]
        if per_call * (cfg["warmup"] + repeats) > cfg["cell_budget_s"]:
            repeats = max(cfg["min_repeats"], int(cfg["cell_budget_s"] / per_call) - 1)
        warmup = min(cfg["warmup"], repeats)
        times, loss = timed_runs(step, device, warmup, repeats)
    except Exception as err:  # unsupported dtype, out of memory, compile failure: say which
        if device == "cuda":
            torch.cuda.empty_cache()
        return {**row, "status": "error", "error": short_error(err)}
    value = float(loss.detach().float())
    return {
        **row,
        "status": "ok",
        "median_ms": 1000 * median(times),
        "min_ms": 1000 * min(times),
        "repeats": len(times),
        "peak_mib": peak_mib(device, baseline),
        "value": value,
        "finite": bool(torch.isfinite(torch.tensor(value))),
    }


def profile(name: str, m: int, d: int, precision: str, cfg: dict[str, Any], top: int = 8):
    """Top operators by self time (device time on a GPU) over 3 calls after 2 warm-up calls."""
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    device = cfg["device"]
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    torch.manual_seed(0)
    online = torch.randn(m, d, device=device).to(dtype)
    target = (online.float() + 0.5 * torch.randn(m, d, device=device)).to(dtype)
    fn = build_loss(name, d, device)

    def step():
        x = online.detach().requires_grad_(True)
        with _autocast(device, precision):
            loss = fn(x, target)
        loss.backward()

    for _ in range(2):
        step()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with torch_profile(activities=activities) as prof:
        for _ in range(3):
            step()
        if device == "cuda":
            torch.cuda.synchronize()
    attr = "self_device_time_total" if device == "cuda" else "self_cpu_time_total"
    events = [e for e in prof.key_averages() if getattr(e, attr, 0) > 0]
    total = sum(getattr(e, attr) for e in events) or 1.0
    events.sort(key=lambda e: getattr(e, attr), reverse=True)
    return [
        {
            "op": e.key,
            "calls_per_step": e.count / 3,
            "self_ms_per_step": getattr(e, attr) / 1000 / 3,
            "share": getattr(e, attr) / total,
        }
        for e in events[:top]
    ]


def run(
    cfg: dict[str, Any], store: ResultStore, budget: Budget, compiled: bool, dry_run: bool
) -> bool:
    """Fills ``store`` with the stage's cells; returns False when the budget ran out first."""
    names = list(OURS) if compiled else list(LOSSES)
    cells = [
        (name, m, d, precision)
        for precision in cfg["compile_precisions" if compiled else "precisions"]
        for m, d in cfg["sizes"]
        for name in names
    ]
    complete = True
    for name, m, d, precision in cells:
        key = f"{name}|{m}x{d}|{precision}|{'compiled' if compiled else 'eager'}"
        if store.get(key) is not None:
            continue
        # The slowest cells take about cell_budget_s (plus a compile for loss-compile).
        if budget.left() < cfg["cell_budget_s"] * (2.0 if compiled else 1.2):
            complete = False
            break
        row = store.add(measure_cell(name, m, d, precision, cfg, compiled))
        print(f"[loss] {_describe(row)}", flush=True)
    if not compiled and complete:
        m, d = cfg["profile_size"]
        for name in (*OURS, "barlowtwins"):
            key = f"profile|{name}|{m}x{d}|{cfg['profile_precision']}"
            if store.get(key) is not None:
                continue
            if budget.left() < 2 * cfg["cell_budget_s"]:
                complete = False
                break
            try:
                ops = profile(name, m, d, cfg["profile_precision"], cfg)
                entry = {"status": "ok", "top_ops": ops}
            except Exception as err:
                entry = {"status": "error", "error": short_error(err), "top_ops": []}
            store.add(
                {
                    "key": key,
                    "kind": "profile",
                    "loss": name,
                    "m": m,
                    "d": d,
                    "precision": cfg["profile_precision"],
                    **entry,
                }
            )
            print(f"[loss] profiled {name} at m={m}, d={d}", flush=True)
    store.set("complete", complete)
    store.save(markdown(store, dry_run))
    return complete


def _describe(row: dict[str, Any]) -> str:
    what = f"{row['label']} m={row['m']} d={row['d']} {row['precision']}"
    if row["status"] != "ok":
        return f"{what}: {row['error']}"
    peak = f", {row['peak_mib']:.0f} MiB" if row["peak_mib"] is not None else ""
    return f"{what}: {row['median_ms']:.3f} ms{peak} (median of {row['repeats']})"


def markdown(store: ResultStore, dry_run: bool) -> str:
    """One table per precision (rows: losses, columns: sizes), ratios, and the profile."""
    data = store.data
    cfg = data["settings"]
    cells = [r for r in store.rows if r.get("kind") != "profile"]
    compiled = any(r["compiled"] for r in cells)
    timer = "CUDA events" if cfg["device"] == "cuda" else "wall clock"
    title = "Loss cost under torch.compile" if compiled else "Loss cost"
    notes = [
        f"Forward + backward, median of {cfg['repeats']} calls after {cfg['warmup']} warm-up"
        f" ({timer}); peak = max_memory_allocated above the inputs."
        + (f" Compile backend: {cfg['compile_backend']}." if compiled else ""),
        "bf16 = bf16 inputs under torch.autocast(bfloat16). Cells: median ms (peak MiB).",
    ]
    out = [header(title, data["env"], dry_run, notes)]
    sizes = [tuple(s) for s in cfg["sizes"]]
    by_key = {(r["loss"], r["m"], r["d"], r["precision"]): r for r in cells}
    for precision in cfg["compile_precisions" if compiled else "precisions"]:
        out += [f"### {precision}", ""]
        out += _header(["loss", "family", *(f"m={m}, d={d}" for m, d in sizes)])
        for name, (label, family) in LOSSES.items():
            row_cells = [by_key.get((name, m, d, precision)) for m, d in sizes]
            if not any(row_cells):
                continue
            texts = []
            for r in row_cells:
                if r is None:
                    texts.append("not run")
                elif r["status"] != "ok":
                    texts.append(f"error ({r['error'][:60]})")
                else:
                    peak = f" ({r['peak_mib']:.0f})" if r["peak_mib"] is not None else ""
                    texts.append(f"{r['median_ms']:.3f}{peak}")
            fam = family + (" (compiled)" if compiled else "")
            out.append(markdown_row([label, fam, *texts]))
        out.append("")
    if not compiled:
        out += _ratio_table(by_key, sizes, cfg["precisions"])
        profiles = [r for r in store.rows if r.get("kind") == "profile"]
        if profiles:
            r0 = profiles[0]
            out += [
                f"### Where the time goes (m={r0['m']}, d={r0['d']}, {r0['precision']}; "
                "self time per forward + backward)",
                "",
            ]
            out += _header(["loss", "top operators (self ms, share)"])
            for r in profiles:
                ops = ", ".join(
                    f"`{o['op']}` {o['self_ms_per_step']:.3f} ms ({100 * o['share']:.0f}%)"
                    for o in r["top_ops"][:5]
                )
                out.append(markdown_row([LOSSES[r["loss"]][0], ops or r.get("error", "-")]))
            out.append("")
    return "\n".join(out)


def _header(headers: list[str]) -> list[str]:
    """The header and separator lines of a Markdown table (rows follow as markdown_row)."""
    return markdown_table([], [(h, h) for h in headers]).splitlines()


def _ratio_table(by_key, sizes, precisions) -> list[str]:
    """Ours vs the d x d form (speed-up) and vs Barlow Twins (time ratio)."""
    lines = [
        "### Ratios",
        "",
        "speed-up = d x d form time / ours; vs BT = ours / Lightly BarlowTwinsLoss time.",
        "",
        *_header(["loss", "precision", *(f"m={m}, d={d}" for m, d in sizes)]),
    ]
    for precision in precisions:
        for name in OURS:
            texts = []
            for m, d in sizes:
                ours = by_key.get((name, m, d, precision))
                dense = by_key.get((DENSE_OF[name], m, d, precision))
                bt = by_key.get(("barlowtwins", m, d, precision))
                if not ours or ours["status"] != "ok":
                    texts.append("-")
                    continue
                speedup = (
                    dense["median_ms"] / ours["median_ms"]
                    if dense and dense["status"] == "ok"
                    else None
                )
                vs_bt = ours["median_ms"] / bt["median_ms"] if bt and bt["status"] == "ok" else None
                up = "-" if speedup is None else f"{speedup:.1f}x"
                texts.append(f"speed-up {up}, vs BT {fmt(vs_bt)}")
            lines.append(markdown_row([LOSSES[name][0], precision, *texts]))
    return [*lines, ""]
