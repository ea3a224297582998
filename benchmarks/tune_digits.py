"""Hyper-parameter search on the digits' validation split, with the same budget for every method.

Every method (ours and Lightly's baselines alike) gets the same grid shape: its ``digits`` preset
learning rate times each of :data:`LR_FACTORS`, crossed with two values of the method's own main
weight (:data:`WEIGHTS`), so 4 runs per method at the same length and seed. A run pretrains on
the 1,005 images of ``train_minus_val`` and scores the frozen backbone on the 252 ``val`` images
(``lightly-matrix pretrain --eval-split val``); the test split is never read. The chosen setting
maximises the mean of the kNN, linear and few-label validation accuracies (fixed before the
search); ties keep the earlier grid point.

Writes ``OUT/log.jsonl`` (one line per finished run, appended as runs finish), ``OUT/results.md``
and ``OUT/best.json``. Finished runs are reused, so an interrupted search continues where it was.

Usage::

    nice python benchmarks/tune_digits.py --epochs 5 --out runs/tune_digits
    python benchmarks/tune_digits.py --methods matrix_ssl corinfomax --parallel 1
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from digits_runs import PROBES, Job, add_run_options, run_jobs

from lightly_matrix.methods import METHOD_CLASSES
from lightly_matrix.presets import PRESETS
from lightly_matrix.utils.text import markdown_table

#: Learning rates tried: the preset's (or the module default's) times these factors.
LR_FACTORS = (1.0, 3.0)
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
    # eps^2 sets lamda = d / (m eps^2), the weight of the higher orders: 512 gives the authors'
    # lamda = 1/32 (d 2048, batch 1024) at the digits' d 1024 and batch 64.
    "mec": ("eps_squared", (64.0, 512.0)),
}
ORDER = tuple(WEIGHTS)


def base_lr(method: str) -> float:
    """The learning rate of the ``digits`` preset, else the method module's default."""
    settings = PRESETS["digits"].settings(method)
    if "lr" in settings:
        return float(settings["lr"])
    from lightly_matrix.pretrain.config import module_defaults

    return float(module_defaults(METHOD_CLASSES[method])["lr"])


def grid(method: str) -> list[dict[str, Any]]:
    """The method's configurations: ``{"lr": ..., "hp": {name: value}}`` in grid order."""
    names, values = WEIGHTS[method]
    keys = names.split(",")
    points = []
    for factor, value in itertools.product(LR_FACTORS, values):
        vals = value if isinstance(value, tuple) else (value,)
        lr = round(base_lr(method) * factor, 10)  # 0.6, not 0.6000000000000001, in the log
        points.append({"lr": lr, "hp": dict(zip(keys, vals, strict=True))})
    return points


def hp_flags(point: dict[str, Any]) -> list[str]:
    flags = ["--lr", f"{point['lr']:g}"]
    for key, value in point["hp"].items():
        flags += ["--hp", f"{key}={value:g}"]
    return flags


def score(row: dict[str, Any]) -> float:
    """The selection criterion: mean validation top-1 over the three probes."""
    return statistics.fmean(row[k] for k in PROBES)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=5, help="length of every run (the demo's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", nargs="+", default=list(ORDER), choices=ORDER)
    parser.add_argument("--out", type=Path, default=Path("runs/tune_digits"))
    add_run_options(parser, parallel=1)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    log_path = args.out / "log.jsonl"
    logged = set()
    if log_path.exists():
        logged = {json.loads(line)["out"] for line in log_path.read_text().splitlines() if line}
    jobs = []
    for method in args.methods:
        for i, point in enumerate(grid(method)):
            flags = ["--eval-split", "val", "--epochs", str(args.epochs), "--seed", str(args.seed)]
            jobs.append(
                Job(
                    method,
                    args.out / method / f"cfg{i}",
                    [*flags, *hp_flags(point)],
                    {"config": i, "lr": point["lr"], "hp": point["hp"]},
                )
            )

    def log(row: dict[str, Any]) -> None:
        if row["out"] not in logged:
            logged.add(row["out"])
            with log_path.open("a") as handle:
                handle.write(json.dumps({**row, "score": score(row)}) + "\n")

    rows = run_jobs(jobs, args.parallel, args.out / "logs", on_result=log, threads=args.threads)
    best: dict[str, Any] = {}
    for method in args.methods:
        mine = [row for row in rows if row["method"] == method]
        top = max(mine, key=score)  # max keeps the first of equal scores
        best[method] = {"lr": top["lr"], "hp": top["hp"], "val_score": score(top)}
        for row in mine:
            row["chosen"] = "yes" if row is top else ""
    header = (
        f"Digits validation search: {args.epochs} epochs, seed {args.seed}, pretrain on 1,005 "
        f"train_minus_val images, probes scored on 252 val images; lr x {LR_FACTORS} x 2 values "
        f"of each method's main weight (4 runs per method); {platform.machine()}, "
        f"{os.cpu_count()} cores, {args.parallel} run(s) at a time.\n"
    )
    for row in rows:
        row["setting"] = f"lr {row['lr']:g}, " + ", ".join(
            f"{k} {v:g}" for k, v in row["hp"].items()
        )
        row["score"] = score(row)
    columns = (
        ("method", "method"),
        ("setting", "setting"),
        ("knn_top1", "val kNN (%)"),
        ("linear_top1", "val linear (%)"),
        ("few_label_top1", "val 10/class (%)"),
        ("score", "mean (%)"),
        ("chosen", "chosen"),
        ("train_wall_s", "train (s)"),
    )
    table = markdown_table(rows, columns)
    print("\n" + header + "\n" + table)
    (args.out / "results.md").write_text(header + "\n" + table + "\n")
    (args.out / "best.json").write_text(
        json.dumps({"settings": {**vars(args), "out": str(args.out)}, "best": best}, indent=2)
        + "\n"
    )


if __name__ == "__main__":
    main()
