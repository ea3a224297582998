"""Loss cost: forward + backward time and peak memory, ours against d x d forms and Lightly's.

Ours (``MatrixSSLLoss``, ``MatrixEntropyLoss`` = M-MAE's TCR term, ``UMAELoss``,
``CorInfoMaxLoss``) beside the straightforward d x d forms (the test suite's float64 references,
``tests/reference_losses.py``: explicit J_m, dense matrices, Taylor series by matrix powers) and
Lightly's ``BarlowTwinsLoss`` and ``VICRegLoss``, on (m, d) inputs in fp32 or bf16 (bf16 inputs
under ``torch.autocast``, as a projection head gives them). Time: the median of
``torch.utils.benchmark.Timer.adaptive_autorange`` (CUDA synchronised). Peak memory above the
inputs: ``torch.cuda.max_memory_allocated`` on a GPU, the resident high-water mark on the CPU.

    python benchmarks/bench_losses.py                                     # CPU table: make bench
    python benchmarks/bench_losses.py --device cuda --precision fp32 bf16 --sizes 4096x8192
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from benchmarks.gpu.common import peak_mib, peak_start, resolve, short_error, write  # noqa: E402

LOSSES = {
    "matrix_ssl": "MatrixSSLLoss (ours, Taylor 4)",
    "matrix_ssl_exact": "MatrixSSLLoss (ours, exact log)",
    "matrix_entropy": "MatrixEntropyLoss (ours, M-MAE TCR)",
    "umae": "UMAELoss (ours)",
    "corinfomax": "CorInfoMaxLoss (ours, running d x d cov)",
    "matrix_ssl_dense": "Matrix-SSL, straightforward d x d",
    "matrix_entropy_dense": "M-MAE TCR, straightforward d x d logdet",
    "corinfomax_dense": "CorInfoMax, straightforward d x d",
    "barlowtwins": "Lightly BarlowTwinsLoss",
    "vicreg": "Lightly VICRegLoss",
}
#: Each of ours -> its d x d form.
DENSE = {
    "matrix_ssl": "matrix_ssl_dense",
    "matrix_ssl_exact": "matrix_ssl_dense",
    "matrix_entropy": "matrix_entropy_dense",
    "corinfomax": "corinfomax_dense",
}


def build(name: str, d: int, device: str) -> Callable[[Any, Any], Any]:
    """``(online, target) -> scalar`` for one loss at embedding size ``d``."""
    from lightly.loss import BarlowTwinsLoss, VICRegLoss
    from reference_losses import CorInfoMaxReference, matrix_ssl_reference, tcr_reference

    from lightly_matrix.loss import CorInfoMaxLoss, MatrixEntropyLoss, MatrixSSLLoss, UMAELoss

    if name == "corinfomax":
        return CorInfoMaxLoss(d).to(device)
    if name == "corinfomax_dense":
        return CorInfoMaxReference(d, 250.0, 0.01, 0.01, 1.0, 1e-8).step
    entropy, umae = MatrixEntropyLoss(), UMAELoss()
    losses: dict[str, Callable[[Any, Any], Any]] = {
        "matrix_ssl": MatrixSSLLoss(),
        "matrix_ssl_exact": MatrixSSLLoss(taylor_order=None),
        "matrix_entropy": lambda a, b: entropy(a),
        "umae": lambda a, b: umae(a),
        "matrix_ssl_dense": lambda a, b: matrix_ssl_reference(a, b, 1.0, 1.0, 1.0, 4),
        "matrix_entropy_dense": lambda a, b: tcr_reference(a, 1.0, False),
        "barlowtwins": BarlowTwinsLoss(),
        "vicreg": VICRegLoss(),
    }
    return losses[name]


def measure(name: str, m: int, d: int, precision: str, device: str, max_s: float) -> dict:
    """One cell; an error (out of memory, an op without bf16) becomes a row that names it."""
    import torch
    from torch.utils.benchmark import Timer

    row: dict[str, Any] = {"loss": name, "m": m, "d": d, "precision": precision}
    torch.manual_seed(0)
    base = torch.randn(m, d, device=device)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    online = base.to(dtype).requires_grad_()
    target = (base + 0.5 * torch.randn_like(base)).to(dtype)

    def step() -> Any:
        online.grad = None
        # The references make their matrices on the default device: put them with the inputs.
        with torch.device(device), torch.autocast(device, torch.bfloat16, precision == "bf16"):
            loss = fn(online, target)
        loss.backward()
        return loss

    try:
        fn = build(name, d, device)
        start = peak_start(device)
        row["value"] = float(step())  # the first call, also the warm-up
        row["peak_mib"] = peak_mib(device, start)
        timer = Timer("step()", globals={"step": step}, num_threads=torch.get_num_threads())
        result = timer.adaptive_autorange(min_run_time=min(0.1, max_s), max_run_time=max_s)
    except Exception as err:
        return {**row, "status": "error", "error": short_error(err)}
    runs = result.number_per_run * len(result.raw_times)
    return {**row, "status": "ok", "median_ms": 1e3 * result.median, "runs": runs}


def cell(rows: dict, name: str, m: int, d: int, precision: str) -> str:
    r = rows.get((name, m, d, precision))
    if r is None:
        return "not run"
    if r["status"] != "ok":
        return f"error: {r['error'][:60]}"
    mib = "" if r["peak_mib"] is None else f", {r['peak_mib']:.0f} MiB"
    text = f"{r['median_ms']:.3f} ms{mib}"
    dense = rows.get((DENSE.get(name), m, d, precision))
    if dense and dense["status"] == "ok":
        text += f", **{dense['median_ms'] / r['median_ms']:.1f}x** faster than d x d"
    bt = rows.get(("barlowtwins", m, d, precision))
    if name in DENSE and bt and bt["status"] == "ok":
        text += f", {r['median_ms'] / bt['median_ms']:.2f}x BT"
    return text


def main(argv: list[str] | None = None) -> int:
    from benchmarks.gpu.common import markdown_row, parser

    p = parser(__doc__)
    p.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda if there is one")
    p.add_argument("--sizes", nargs="+", default=["256x2048", "1024x2048", "256x8192"])
    p.add_argument("--precision", nargs="+", choices=["fp32", "bf16"], default=["fp32"])
    p.add_argument("--losses", nargs="+", choices=list(LOSSES), default=list(LOSSES))
    p.add_argument("--dense-max-d", type=int, default=2048, help="d x d forms up to this d")
    p.add_argument("--max-run-time", type=float, default=2.0, help="timing seconds per cell")
    args = p.parse_args(argv)
    if args.dry_run:
        args.sizes, args.precision, args.max_run_time = ["32x64"], ["fp32", "bf16"], 0.05
    elif args.out is None:
        args.out = ROOT / "benchmarks" / "results"
    import torch

    device = resolve(args, args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes]
    rows = []
    for precision in args.precision:
        for m, d in sizes:
            for name in args.losses:
                if name.endswith("_dense") and (d > args.dense_max_d or precision != "fp32"):
                    continue
                rows.append(measure(name, m, d, precision, device, args.max_run_time))
                print({k: v for k, v in rows[-1].items() if k != "value"}, flush=True)
    by_key = {(r["loss"], r["m"], r["d"], r["precision"]): r for r in rows}
    lines = []
    for precision in args.precision:
        header = markdown_row(["loss", *(f"m={m}, d={d}" for m, d in sizes)])
        lines += [f"### {precision}", "", header, "|---" * (len(sizes) + 1) + "|"]
        for name in args.losses:
            cells = [cell(by_key, name, m, d, precision) for m, d in sizes]
            if set(cells) != {"not run"}:
                lines.append(markdown_row([LOSSES[name], *cells]))
        lines.append("")
    notes = [
        "Forward + backward, median (torch.utils.benchmark.Timer.adaptive_autorange); peak memory"
        " above the inputs. bf16: bf16 inputs under torch.autocast. BT: Lightly BarlowTwinsLoss.",
        f"d x d forms (float64 references) in fp32 up to d = {args.dense_max_d} (--dense-max-d).",
    ]
    write(args, f"bench_losses-{device}", "Loss cost", rows, "\n".join(lines), device, notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
