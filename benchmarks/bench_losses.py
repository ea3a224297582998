"""Loss cost: forward + backward time and peak memory, ours vs the straightforward d x d form.

Prints a Markdown table and writes it with the raw numbers under ``benchmarks/results/``. Lightly's
BarlowTwinsLoss and VICRegLoss are the yardsticks. Each cell runs in a fresh subprocess so that
peak memory (RSS high-water mark on the CPU, ``max_memory_allocated`` on a GPU) belongs to that
loss alone. The straightforward formulations are the test suite's reference implementations
(``tests/reference_losses.py``: explicit J_m, dense d x d matrices, Taylor series by matrix powers).

    python benchmarks/bench_losses.py                  # CPU, and CUDA when available
    python benchmarks/bench_losses.py --device cpu --sizes 256x2048
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from lightly_matrix.utils.text import markdown_row, markdown_table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

SIZES = [(256, 2048), (1024, 2048), (256, 8192)]
# name -> (description, pair input?)
LOSSES: dict[str, str] = {
    "matrix_ssl": "MatrixSSLLoss (ours, Taylor 4)",
    "matrix_ssl_exact": "MatrixSSLLoss (ours, exact log)",
    "matrix_ssl_dense": "Matrix-SSL, straightforward d x d",
    "matrix_entropy": "MatrixEntropyLoss (ours)",
    "matrix_entropy_dense": "M-MAE TCR, straightforward d x d logdet",
    "umae": "UMAELoss (ours)",
    "corinfomax": "CorInfoMaxLoss (ours, d x d running cov)",
    "barlowtwins": "lightly BarlowTwinsLoss",
    "vicreg": "lightly VICRegLoss",
}
# d x d formulations cost ~ d^3; cells predicted above this many seconds are skipped unless
# --full (their estimate is printed, marked as such).
CUBIC_IN_D = {"matrix_ssl_dense", "matrix_entropy_dense", "corinfomax"}
DEFAULT_BUDGET_S = 120.0


def _make(name: str, m: int, d: int):
    import torch
    from lightly.loss import BarlowTwinsLoss, VICRegLoss
    from reference_losses import CorInfoMaxReference, matrix_ssl_reference, tcr_reference

    from lightly_matrix.loss import CorInfoMaxLoss, MatrixEntropyLoss, MatrixSSLLoss, UMAELoss

    fns = {
        "matrix_ssl": lambda a, b: MatrixSSLLoss()(a, b),
        "matrix_ssl_exact": lambda a, b: MatrixSSLLoss(taylor_order=None)(a, b),
        "matrix_ssl_dense": lambda a, b: matrix_ssl_reference(a, b, 1.0, 1.0, 1.0, 4),
        "matrix_entropy": lambda a, b: MatrixEntropyLoss()(a),
        "matrix_entropy_dense": lambda a, b: tcr_reference(a, 1.0, False),
        "umae": lambda a, b: UMAELoss()(a),
        "barlowtwins": lambda a, b: BarlowTwinsLoss()(a, b),
        "vicreg": lambda a, b: VICRegLoss()(a, b),
    }
    if name == "corinfomax":
        loss = CorInfoMaxLoss(d)
        return lambda a, b: loss.to(a.device)(a, b)
    if name == "corinfomax_dense":
        ref = CorInfoMaxReference(d, 250.0, 0.01, 0.01, 1.0, 1e-8)
        return lambda a, b: ref.step(a, b)
    del torch
    return fns[name]


def run_cell(name: str, m: int, d: int, device: str, repeats: int) -> dict:
    import torch

    torch.manual_seed(0)
    a = torch.randn(m, d, device=device)
    b = (a + 0.5 * torch.randn(m, d, device=device)).detach()
    fn = _make(name, m, d)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    times = []
    for _ in range(repeats):
        x = a.clone().requires_grad_(True)
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        loss = fn(x, b)
        loss.backward()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        value = float(loss)
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    return {
        "loss": name,
        "m": m,
        "d": d,
        "device": device,
        "seconds": min(times),
        "peak_mb": peak / 2**20,
        "value": value,
    }


def _cell_subprocess(name: str, m: int, d: int, device: str, repeats: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--cell", name, str(m), str(d), device, str(repeats)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _estimate(measured: dict[tuple[str, int, int], float], name: str, m: int, d: int):
    """Seconds predicted for the d x d formulations (cost ~ d^3) from a smaller d, same m."""
    if name not in CUBIC_IN_D:
        return None
    smaller = [(dd, t) for (n, mm, dd), t in measured.items() if n == name and mm == m and dd < d]
    if not smaller:
        return None
    ref_d, ref_t = max(smaller)
    return ref_t * (d / ref_d) ** 3


def _hardware(device: str) -> str:
    import torch

    if device == "cuda":
        return torch.cuda.get_device_name(0)
    threads = torch.get_num_threads()
    return f"{platform.processor() or platform.machine()} CPU, {threads} threads"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cell", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--sizes", nargs="*", default=[f"{m}x{d}" for m, d in SIZES])
    parser.add_argument("--losses", nargs="*", default=list(LOSSES), choices=list(LOSSES))
    parser.add_argument("--repeats", type=int, default=3, help="best of N (default 3)")
    parser.add_argument("--full", action="store_true", help="run cells predicted to be very slow")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    if args.cell:
        name, m, d, device, repeats = args.cell
        print(json.dumps(run_cell(name, int(m), int(d), device, int(repeats))))
        return 0

    import torch

    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        if args.device == "cuda":
            print("CUDA is not available on this machine.", file=sys.stderr)
            return 2
        devices.remove("cuda")
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes]
    rows = []
    for device in devices:
        measured: dict[tuple[str, int, int], float] = {}
        for m, d in sizes:
            for name in args.losses:
                repeats = args.repeats
                estimate = _estimate(measured, name, m, d)
                if estimate is not None and estimate > DEFAULT_BUDGET_S and not args.full:
                    rows.append(
                        {
                            "loss": name,
                            "m": m,
                            "d": d,
                            "device": device,
                            "seconds": None,
                            "estimate_s": estimate,
                            "peak_mb": None,
                        }
                    )
                    print(
                        f"{device} {name} m={m} d={d}: skipped, ~{estimate:.0f} s "
                        "estimated from the d^3 cost (--full runs it)",
                        flush=True,
                    )
                    continue
                if estimate is not None and estimate > 10.0:
                    repeats = 1  # one run of a multi-second cell is timing enough
                row = _cell_subprocess(name, m, d, device, repeats)
                measured[(name, m, d)] = row["seconds"]
                rows.append(row)
                print(
                    f"{device} {name} m={m} d={d}: {row['seconds']:.4f} s, "
                    f"{row['peak_mb']:.0f} MB, value {row['value']:.6g}",
                    flush=True,
                )
    table = _markdown(rows, {dev: _hardware(dev) for dev in devices})
    print()
    print(table)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    stem = args.out_dir / f"bench_losses-{'-'.join(devices)}-{stamp}"
    stem.with_suffix(".json").write_text(json.dumps(rows, indent=2))
    stem.with_suffix(".md").write_text(table + "\n")
    print(f"\nwritten: {stem}.json, {stem}.md")
    return 0


def _markdown(rows: list[dict], hardware: dict[str, str]) -> str:
    lines = []
    for device, hw in hardware.items():
        lines.append(
            f"**{device}** ({hw}, torch {__import__('torch').__version__}), fp32, "
            "forward + backward, best of 3; peak memory above the inputs"
        )
        lines.append("")
        sizes = sorted(
            {(r["m"], r["d"]) for r in rows if r["device"] == device}, key=lambda s: (s[1], s[0])
        )
        headers = ["loss", *(f"m={m}, d={d}" for m, d in sizes)]
        lines += markdown_table([], [(h, h) for h in headers]).splitlines()
        by_key = {(r["loss"], r["m"], r["d"]): r for r in rows if r["device"] == device}
        for name, label in LOSSES.items():
            cells = []
            for m, d in sizes:
                r = by_key.get((name, m, d))
                if r is None:
                    cells.append("")
                elif r["seconds"] is None:
                    cells.append(f"not run (~{r['estimate_s']:.0f} s est.)")
                else:
                    cell = f"{r['seconds']:.4f} s, {r['peak_mb']:.0f} MB"
                    dense = by_key.get((name.replace("_exact", "") + "_dense", m, d))
                    if (
                        name in ("matrix_ssl", "matrix_ssl_exact", "matrix_entropy")
                        and dense
                        and dense["seconds"]
                    ):
                        cell += f" (**{dense['seconds'] / r['seconds']:.0f}x**)"
                    cells.append(cell)
            if any(cells):
                lines.append(markdown_row([label, *cells]))
        lines.append("")
    lines.append("(Nx) = speed-up over the straightforward d x d formulation in the same run.")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
