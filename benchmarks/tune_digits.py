"""Hyper-parameter search on the digits' validation split, with the same budget for every method.

Every method (ours and Lightly's baselines alike) gets the same grid shape: its ``digits`` preset
learning rate times each of :data:`LR_FACTORS`, crossed with two values of the method's own main
weight (:data:`WEIGHTS`), then one more run a factor :data:`EDGE_STEP` beyond the lr of the best
of those four, at its weight (:func:`edge_point`): a best at an end of the range may only mark
where the grid stopped. 5 runs per method at the same length and seed. A run pretrains on
the 1,005 images of ``train_minus_val`` and scores the frozen backbone on the 252 ``val`` images
(``lightly-matrix pretrain --eval-split val``); the test split is never read. The chosen setting
maximises the mean of the kNN, linear and few-label validation accuracies (fixed before the
search); ties keep the earlier grid point.

Writes the results log (``--log``, default ``OUT/log.jsonl``: one line per finished run, appended
as runs finish) and, beside it and refreshed after every run, ``results.md`` and ``best.json``
(the chosen setting of each method whose runs have all finished). Logged runs are reused and
unfinished ones continue from their checkpoints, so an interrupted search continues where it was;
with the log in ``benchmarks/results/`` it continues in a fresh checkout too.

Usage::

    nice python benchmarks/tune_digits.py --epochs 5 --out runs/tune_digits
    python benchmarks/tune_digits.py --epochs 30 --parallel 2 --threads 1 --out runs/tune30 \\
        --log benchmarks/results/tune_digits-30ep/log.jsonl
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

from digits_runs import PROBES, Job, add_run_options, read_log, run_jobs, run_key

from lightly_matrix.methods import METHOD_CLASSES
from lightly_matrix.presets import PRESETS
from lightly_matrix.utils.io import atomic_write_text
from lightly_matrix.utils.text import markdown_table

#: Learning rates tried: the preset's (or the module default's) times these factors.
LR_FACTORS = (1.0, 3.0)
#: The extra run's lr: the best grid point's lr divided (at the low end) or multiplied by this.
EDGE_STEP = 3.0
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


def edge_point(method: str, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The extra point beyond the lr range on the side of the grid's best, once the grid is in.

    With two learning rates the best always sits at an end: at the lower one the extra run uses
    lr / :data:`EDGE_STEP`, at the upper one lr * :data:`EDGE_STEP`, with the best point's weight.
    ``None`` while some grid point of ``method`` has not finished.
    """
    points = grid(method)
    mine = {row["config"]: row for row in rows if row["method"] == method}
    if any(i not in mine for i in range(len(points))):
        return None
    top = max((mine[i] for i in range(len(points))), key=score)  # max keeps the first of ties
    step = 1 / EDGE_STEP if top["lr"] == min(p["lr"] for p in points) else EDGE_STEP
    return {"lr": round(top["lr"] * step, 10), "hp": dict(top["hp"])}


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
    method: str, config: int, point: dict[str, Any], epochs: int, seed: int, out: Path
) -> Job:
    """The search run of ``method`` at ``point``, in ``OUT/method/cfg{config}``."""
    flags = ["--eval-split", "val", "--epochs", str(epochs), "--seed", str(seed)]
    return Job(
        method,
        out / method / f"cfg{config}",
        [*flags, *hp_flags(point)],
        {"config": config, "lr": point["lr"], "hp": point["hp"], "epochs": epochs, "seed": seed},
    )


def jobs_for(method: str, epochs: int, seed: int, out: Path) -> list[Job]:
    """The search's grid runs for ``method``, one per grid point."""
    return [search_job(method, i, point, epochs, seed, out) for i, point in enumerate(grid(method))]


def edge_job(method: str, rows: list[dict[str, Any]], epochs: int, seed: int, out: Path) -> Job:
    """The extra run of ``method`` (:func:`edge_point`); its grid must have finished."""
    point = edge_point(method, rows)
    if point is None:
        raise ValueError(f"{method}'s grid has unfinished runs; its extra point is not known yet")
    return search_job(method, len(grid(method)), point, epochs, seed, out)


def report(rows: list[dict[str, Any]], args: argparse.Namespace, folder: Path) -> str:
    """Writes ``results.md`` (all finished runs) and ``best.json`` (complete methods) to ``folder``.

    A method's setting is chosen only once its grid points and its extra point have finished.
    """
    rows = sorted(rows, key=lambda r: (ORDER.index(r["method"]), r["config"]))
    best: dict[str, Any] = {}
    table_rows = []
    for method in ORDER:
        mine = [row for row in rows if row["method"] == method]
        complete = len(mine) == len(grid(method)) + 1
        top = max(mine, key=score) if complete else None  # max keeps the first of equal scores
        if top is not None:
            best[method] = {"lr": top["lr"], "hp": top["hp"], "val_score": score(top)}
        for row in mine:
            setting = ", ".join(f"{k} {v:g}" for k, v in row["hp"].items())
            before = score(row["before"]) if row.get("before") else None
            extra = " (extra)" if row["config"] == len(grid(method)) else ""
            table_rows.append(
                {
                    **row,
                    "setting": f"lr {row['lr']:g}, {setting}{extra}",
                    "score": score(row),
                    "random": "" if before is None else f"{before:.2f}",
                    "chosen": "yes" if row is top else ("" if complete else "(pending)"),
                }
            )
    missing = [m for m in ORDER if m not in best]
    header = (
        f"Digits validation search: {args.epochs} epochs, seed {args.seed}, pretrain on 1,005 "
        f"train_minus_val images, probes scored on 252 val images; lr x {LR_FACTORS} x 2 values "
        f"of each method's main weight, plus an extra run at the best one's weight and lr / or x "
        f"{EDGE_STEP:g} (5 runs per method), chosen by the mean of the three probes; "
        f"{platform.machine()}, {os.cpu_count()} cores, {args.parallel} run(s) at a time "
        f"on {args.threads or 'cores / parallel'} thread(s) each. "
        + (f"Not finished: {', '.join(missing)}.\n" if missing else "Complete.\n")
    )
    columns = (
        ("method", "method"),
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
    best_text = json.dumps({"settings": settings, "best": best, "pending": missing}, indent=2)
    atomic_write_text(folder / "best.json", best_text + "\n")
    return text


def main() -> None:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    args.log = args.log or args.out / "log.jsonl"
    args.log.parent.mkdir(parents=True, exist_ok=True)
    jobs = [job for m in args.methods for job in jobs_for(m, args.epochs, args.seed, args.out)]
    # The report covers every method in the log, so a partial --methods run keeps the others.
    finished = {key: row for key, row in read_log(args.log).items()}

    def update(row: dict[str, Any]) -> None:
        finished[row.get("run") or run_key(row["out"])] = row
        report(list(finished.values()), args, args.log.parent)

    def run(batch: list[Job]) -> None:
        run_jobs(
            batch,
            args.parallel,
            args.out / "logs",
            on_result=update,
            threads=args.threads,
            results_log=args.log,
        )

    run(jobs)
    rows = list(finished.values())
    run([edge_job(m, rows, args.epochs, args.seed, args.out) for m in args.methods])
    print("\n" + report(list(finished.values()), args, args.log.parent))


if __name__ == "__main__":
    main()
