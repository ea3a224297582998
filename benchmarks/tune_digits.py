"""Hyper-parameter search on the digits' validation split, with the same budget for every method.

Every ResNet method (ours and Lightly's baselines alike) gets the same search: two head shapes
(:data:`SHAPES`: its paper's, at the digits' width 1024, and the other family's), and for each a
grid of its search lr (:data:`BASE_LR`) times each of :data:`LR_FACTORS` crossed with two values
of its main weight (:data:`WEIGHTS`), then :data:`EDGES` extra runs one after another, each one
lr step beyond the best run so far, or halfway towards its better neighbour where the best is
inside the lrs tried (:func:`next_point`): 12 runs per method at the same length and seed. A run
pretrains on the 1,005 images of ``train_minus_val`` and scores the frozen backbone on the 252
``val`` images (``lightly-matrix pretrain --eval-split val``); the test split is never read. The
chosen setting maximises the mean of the kNN, linear and few-label validation accuracies (fixed
before the search); ties keep the earlier run.

Writes the results log (``--log``, default ``OUT/log.jsonl``: one line per finished run, appended
as runs finish) and, beside it and refreshed after every run, ``results.md`` and ``best.json``
(each complete method's chosen setting, and per shape the best of each method at those heads:
the loss-isolating twins). Logged runs are reused and unfinished ones continue from their
checkpoints, so an interrupted search continues where it was; with the log in
``benchmarks/results/`` it continues in a fresh checkout too.

Usage::

    nice -n 19 python benchmarks/tune_digits.py --epochs 30 --parallel 2 --threads 1 \\
        --out /work/runs/tune30-shapes --log benchmarks/results/tune_digits-30ep-shapes/log.jsonl
    python benchmarks/tune_digits.py --epochs 1 --methods byol --out /tmp/tune
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from digits_runs import PROBES, Job, add_run_options, hp_flags, read_log, run_jobs

from lightly_matrix.methods import METHOD_CLASSES
from lightly_matrix.utils.io import atomic_write_text
from lightly_matrix.utils.text import markdown_table

#: Learning rates tried: the search lr times these factors.
LR_FACTORS = (1.0, 3.0)
#: The extra runs' lr step beyond the lrs tried.
EDGE_STEP = 3.0
#: Extra runs per (method, shape), after its grid.
EDGES = 2
#: The lr each search multiplies: the ``digits`` preset's when the search began, fixed here so a
#: later preset change cannot alter a search that is resumed.
BASE_LR = {"matrix_ssl": 3.0, "mec": 3.0, "byol": 3.0, "corinfomax": 0.5, "barlowtwins": 0.6}
BASE_LR |= {"vicreg": 0.9, "mmae": 1.5e-3, "umae": 1.5e-3, "mae": 1.5e-3}
#: Each method's own main weight and the two values tried (first: the papers' / preset value).
WEIGHTS: dict[str, tuple[str, tuple[Any, ...]]] = {
    "matrix_ssl": ("gamma", (1.0, 0.5)),
    "corinfomax": ("alpha", (250.0, 1000.0)),
    "barlowtwins": ("lambda_param", (5e-3, 2e-2)),
    # VICReg's three weights as (invariance, variance, covariance).
    "vicreg": ("lambda_param,mu_param,nu_param", ((25.0, 25.0, 1.0), (10.0, 10.0, 1.0))),
    "mmae": ("reg_weight", (0.01, 0.1)),
    "umae": ("reg_weight", (0.01, 0.1)),
    # MAE has no regulariser: its main knob is the mask ratio.
    "mae": ("mask_ratio", (0.75, 0.5)),
    # BYOL has no loss weight: its main knob is the teacher momentum.
    "byol": ("momentum_start", (0.99, 0.996)),
    # lamda = d / (m eps^2) weighs the higher orders: at d 1024 and batch 64, eps^2 512 gives the
    # authors' lamda 1/32 (d 2048, batch 1024). grid() scales eps^2 with d to keep lamda.
    "mec": ("eps_squared", (64.0, 512.0)),
}
ORDER = tuple(WEIGHTS)
RESNET_METHODS = ("matrix_ssl", "mec", "byol", "corinfomax", "barlowtwins", "vicreg")
#: Head shapes as constructor arguments (each method takes the keys it has), the papers' widths
#: scaled to the digits' 1024 (ResNet-18 features are 512-d).
HEADS: dict[str, dict[str, Any]] = {
    # Matrix-SSL and MEC (mec/builder.py): projector 2048-2048-2048, predictor 2048-512-2048.
    "mssl": {"hidden_dim": 1024, "output_dim": 1024, "pred_hidden_dim": 256},
    # BYOL (Sec. 3.3; Lightly's BYOL example): projector 512-1024-256, predictor 256-1024-256.
    "byol": {"hidden_dim": 1024, "output_dim": 256, "pred_hidden_dim": 1024},
    # CorInfoMax CIFAR-10 (README): 2048-2048-64, hidden layers without BatchNorm.
    "cim": {"hidden_dim": 1024, "output_dim": 64, "proj_batch_norm": False},
    # Barlow Twins and VICReg: 8192-8192-8192 with BatchNorm.
    "bt": {"hidden_dim": 1024, "output_dim": 1024, "proj_batch_norm": True},
    "preset": {},  # the ViTs' decoders stay the preset's
}
#: Each method's shapes: its paper's first, then the other family's.
SHAPES: dict[str, tuple[str, ...]] = {
    "matrix_ssl": ("mssl", "byol"),
    "mec": ("mssl", "byol"),
    "byol": ("byol", "mssl"),
}
SHAPES |= {"corinfomax": ("cim", "bt"), "barlowtwins": ("bt", "cim"), "vicreg": ("bt", "cim")}
SHAPES |= dict.fromkeys(("mmae", "umae", "mae"), ("preset",))
#: Run first (the baselines the issue questions), then ORDER.
FIRST = (("byol", "byol"), ("mec", "mssl"), ("mec", "byol"), ("matrix_ssl", "byol"))


def head(method: str, shape: str) -> dict[str, Any]:
    """The constructor arguments of ``shape`` that ``method`` has."""
    defaults = METHOD_CLASSES[method].hparam_defaults()
    return {k: v for k, v in HEADS[shape].items() if k in defaults}


def grid(method: str, shape: str) -> list[dict[str, Any]]:
    """The configurations ``{"lr": ..., "hp": {name: value}}`` of (method, shape), in order."""
    names, values = WEIGHTS[method]
    points = []
    for factor in LR_FACTORS:
        for value in values:
            vals = value if isinstance(value, tuple) else (value,)
            if method == "mec":
                vals = tuple(v * head(method, shape)["output_dim"] / 1024 for v in vals)
            weights = dict(zip(names.split(","), vals, strict=True))
            # Rounded: 0.6, not 0.6000000000000001, in the log.
            lr = round(BASE_LR[method] * factor, 10)
            points.append({"lr": lr, "hp": {**head(method, shape), **weights}})
    return points


def next_point(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The next extra point of one (method, shape), at the weight of its best run so far.

    Where that best sits at an end of the lrs tried, one :data:`EDGE_STEP` beyond it (a best at
    an end may only mark where the grid stopped); inside them, halfway (geometric mean) towards
    its neighbour lr whose best run scored higher.
    """
    rows = sorted(rows, key=lambda r: r["config"])
    top = max(rows, key=score)  # max keeps the first of ties
    lrs = sorted({row["lr"] for row in rows})
    i = lrs.index(top["lr"])
    if i in (0, len(lrs) - 1):
        lr = top["lr"] * (1 / EDGE_STEP if i == 0 else EDGE_STEP)
    else:
        best = {lr: max(score(r) for r in rows if r["lr"] == lr) for lr in lrs}
        lr = math.sqrt(top["lr"] * max(lrs[i - 1], lrs[i + 1], key=best.__getitem__))
    return {"lr": round(lr, 10), "hp": dict(top["hp"])}


def pick(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The chosen setting among ``rows`` (max keeps the first of equal scores)."""
    top = max(rows, key=score)
    return {"lr": top["lr"], "hp": top["hp"], "val_score": score(top), "run": top["run"]}


def score(row: dict[str, Any]) -> float:
    """The selection criterion: mean validation top-1 over the three probes."""
    return statistics.fmean(row[k] for k in PROBES)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=5, help="length of every run (the demo's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", nargs="+", default=list(RESNET_METHODS), choices=ORDER)
    parser.add_argument("--out", type=Path, default=Path("runs/tune_digits"))
    parser.add_argument(
        "--log",
        type=Path,
        help="results log (default OUT/log.jsonl); results.md and best.json are written beside "
        "it. Runs logged there are not run again, so a log kept in benchmarks/results/ carries a "
        "search across machines and sessions",
    )
    add_run_options(parser, parallel=1)
    return parser.parse_args()


def search_job(
    method: str, shape: str, config: int, point: dict[str, Any], epochs: int, seed: int, out: Path
) -> Job:
    """The search run of ``method`` at ``point``, in ``OUT/method/shape-cfg{config}``."""
    flags = ["--eval-split", "val", "--epochs", str(epochs), "--seed", str(seed)]
    tag = {"shape": shape, "config": config, **point, "epochs": epochs, "seed": seed}
    return Job(method, out / method / f"{shape}-cfg{config}", [*flags, *hp_flags(point)], tag)


def groups(methods: list[str]) -> list[tuple[str, str]]:
    """The (method, shape) searches of ``methods``, :data:`FIRST` first."""
    pairs = [(m, s) for m in ORDER if m in methods for s in SHAPES[m]]
    return sorted(pairs, key=lambda g: FIRST.index(g) if g in FIRST else len(FIRST))


def report(rows: list[dict[str, Any]], args: argparse.Namespace, folder: Path) -> str:
    """Writes ``results.md`` (all finished runs) and ``best.json`` to ``folder``.

    A method's setting is chosen once all its runs have finished; its best at one shape (a
    twin) once that shape's have.
    """
    size = len(LR_FACTORS) * 2 + EDGES
    rows = sorted(rows, key=lambda r: (ORDER.index(r["method"]), r["shape"], r["config"]))
    best: dict[str, Any] = {}
    twins: dict[str, dict[str, Any]] = {}
    table_rows = []
    for method in ORDER:
        mine = [row for row in rows if row["method"] == method]
        for shape in SHAPES[method]:
            runs = [row for row in mine if row["shape"] == shape]
            if len(runs) == size:
                twins.setdefault(shape, {})[method] = pick(runs)
        if len(mine) == size * len(SHAPES[method]):
            best[method] = pick(mine)
        for row in mine:
            setting = ", ".join(
                f"{k} {v:g}" for k, v in row["hp"].items() if k not in HEADS[row["shape"]]
            )
            before = score(row["before"]) if row.get("before") else None
            extra = " (extra)" if row["config"] >= size - EDGES else ""
            table_rows.append(
                {
                    **row,
                    "setting": f"lr {row['lr']:g}, {setting}{extra}",
                    "score": score(row),
                    "random": "" if before is None else f"{before:.2f}",
                    "chosen": "yes" if row["run"] == best.get(method, {}).get("run") else "",
                }
            )
    done = [m for m in ORDER if m in best]
    pending = [m for m in ORDER if m not in best and any(r["method"] == m for r in rows)]
    shapes = "; ".join(
        f"{k}: " + ", ".join(f"{a} {b}" for a, b in v.items()) for k, v in HEADS.items() if v
    )
    header = (
        f"Digits validation search: {args.epochs} epochs, seed {args.seed}, pretrain on 1,005 "
        f"train_minus_val images, probes scored on 252 val images. Per method and head shape "
        f"({shapes}): lr x {LR_FACTORS} x 2 values of the method's main weight, then {EDGES} extra "
        f"runs at the best one's weight, an lr step of {EDGE_STEP:g} beyond the best so far or "
        f"halfway to its better neighbour ({size} runs per shape), chosen by the mean of the three "
        f"probes; {platform.machine()}, {os.cpu_count()} cores, {args.parallel} run(s) at a time "
        f"on {args.threads or 'cores / parallel'} thread(s) each. Complete: "
        f"{', '.join(done) or 'none'}; not finished: {', '.join(pending) or 'none'}.\n"
    )
    columns = (
        ("method", "method"),
        ("shape", "heads"),
        ("setting", "setting"),
        ("knn_top1", "val kNN (%)"),
        ("linear_top1", "val linear (%)"),
        ("few_label_top1", "val 10/class (%)"),
        ("score", "mean (%)"),
        ("random", "random init mean (%)"),
        ("chosen", "chosen"),
        ("train_wall_s", "train (s)"),
    )
    text = header + "\n" + markdown_table(table_rows, columns) + "\n"
    atomic_write_text(folder / "results.md", text)
    settings = {**vars(args), "out": str(args.out), "log": str(args.log)}
    best_json = {"settings": settings, "best": best, "twins": twins, "pending": pending}
    atomic_write_text(folder / "best.json", json.dumps(best_json, indent=2) + "\n")
    return text


def main() -> None:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    args.log = args.log or args.out / "log.jsonl"
    args.log.parent.mkdir(parents=True, exist_ok=True)
    # The report covers every method in the log, so a partial --methods run keeps the others.
    finished = read_log(args.log)
    lock = threading.Lock()

    def update(row: dict[str, Any]) -> None:
        with lock:
            finished[row["run"]] = row
            report(list(finished.values()), args, args.log.parent)

    def search(method: str, shape: str) -> None:
        """The grid of (method, shape), then its extra points, one run after another."""

        def run(config: int, point: dict[str, Any]) -> dict[str, Any]:
            job = search_job(method, shape, config, point, args.epochs, args.seed, args.out)
            logs, log = args.out / "logs", args.log
            return run_jobs([job], 1, logs, update, args.threads, results_log=log)[0]

        rows = [run(i, point) for i, point in enumerate(grid(method, shape))]
        for config in range(len(rows), len(rows) + EDGES):
            rows.append(run(config, next_point(rows)))

    # (method, shape) searches side by side, each one run at a time (its extra points need its
    # earlier scores); a failed run stops only its own search.
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        futures = [pool.submit(search, *group) for group in groups(args.methods)]
    for future in futures:
        future.result()
    print("\n" + report(list(finished.values()), args, args.log.parent))


if __name__ == "__main__":
    main()
