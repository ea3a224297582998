"""Every pretraining method on the offline digits, over several seeds, against untrained baselines.

Each method is pretrained with ``lightly-matrix pretrain`` and its ``digits`` preset, whose
hyper-parameters were chosen on the validation split by ``benchmarks/tune_digits.py`` (ResNet-18,
32 px, the same augmentations, epochs and batch for all; the masked-image methods need a ViT, so
they use ViT-Tiny with 4 px patches). The frozen backbone is scored with kNN, a linear probe and a
10-labels-per-class probe on the 540-image test split, once per seed. The baselines are each
run's own evaluation before training (its random initialisation) and raw pixels.

Tables give mean +- sample std over the seeds. A difference is called significant only when the
two means differ by more than the sum of their standard deviations (``*``); with 3 seeds that is a
plain, conservative rule rather than a test. Writes ``results.md`` and ``results.json``
(every seed's row kept) beside a results log (``--log``, default ``OUT/log.jsonl``, a line per
finished run). Logged runs are reused, unfinished ones in OUT continue from their checkpoints.

With ``--best`` (the ``best.json`` of a ``tune_digits.py`` search at the same length) each method
trains with the lr and main weight its validation search chose, so every method gets the same
tuning budget; the test split is read only here.

Usage::

    nice python benchmarks/pretrain_digits.py --epochs 5 --seeds 0 1 2 --out runs/bench_digits
    python benchmarks/tune_digits.py --epochs 30 --out runs/tune30 --parallel 2 --threads 1
    python benchmarks/pretrain_digits.py --epochs 30 --best runs/tune30/best.json --out runs/p30
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from digits_runs import (
    PROBES,
    Job,
    add_run_options,
    fmt,
    hp_flags,
    mean_std,
    run_jobs,
    separated,
)

from lightly_matrix.data.digits import NUM_CLASSES, DigitsDataset
from lightly_matrix.data.transforms import build_eval_transform
from lightly_matrix.evaluation import evaluate_features, extract_features
from lightly_matrix.methods import METHOD_CLASSES
from lightly_matrix.presets import PRESETS
from lightly_matrix.utils.text import markdown_table

METHODS = (
    "matrix_ssl",
    "mec",
    "byol",
    "corinfomax",
    "barlowtwins",
    "vicreg",
    "mmae",
    "umae",
    "mae",
)
PROBE_NAMES = {"knn_top1": "kNN", "linear_top1": "linear", "few_label_top1": "10 labels/class"}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--out", type=Path, default=Path("runs/bench_digits"))
    parser.add_argument(
        "--best",
        type=Path,
        help="best.json of benchmarks/tune_digits.py: each method's chosen lr and main weight "
        "(at the search's length) instead of the digits preset's",
    )
    parser.add_argument(
        "--shape",
        help="with --best: each method's best at these heads (best.json's twins), so the methods "
        "differ only in their loss",
    )
    parser.add_argument(
        "--log",
        type=Path,
        help="results log (default OUT/log.jsonl): runs logged there are not run again, so a log "
        "kept in benchmarks/results/ carries the seeds across machines and sessions",
    )
    add_run_options(parser, parallel=2)
    return parser.parse_args()


def chosen_setting(best: Path | None, method: str, shape: str | None = None) -> dict[str, Any]:
    """``{"lr", "hp"}`` the validation search chose for ``method`` (at the heads ``shape``, the
    loss-isolating twins, if given); ``{}`` without ``best``."""
    if best is None:
        return {}
    chosen = json.loads(best.read_text())
    chosen = chosen["twins"].get(shape, {}) if shape else chosen["best"]
    if method not in chosen:
        raise SystemExit(f"{best} has no setting for {method}; run tune_digits.py for it first")
    return {"lr": chosen[method]["lr"], "hp": chosen[method]["hp"]}


def backbone_label(method: str) -> str:
    settings = PRESETS["digits"].settings(method)
    if METHOD_CLASSES[method].masked:
        return f"{settings['backbone']} (patch {settings['patch_size']})"
    return str(settings["backbone"])


def random_init_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The random initialisations: each run's own epoch-0 evaluation, one row per (backbone, seed).

    Runs of one seed start from the same weights whatever the method (the process is seeded before
    the backbone is built), so these are exactly the networks the pretrained rows started from.
    """
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for run in runs:
        if run.get("before") is not None:
            key = (run["backbone"], run["seed"])
            row = {"method": "random init", "backbone": key[0], "seed": key[1], **run["before"]}
            if key in rows and rows[key] != row:
                print(f"note: {run['out']} started from other weights than {key}", flush=True)
            rows.setdefault(key, row)
    return list(rows.values())


def raw_pixels() -> dict[str, Any]:
    """The probes on the pixels themselves (deterministic: no seed)."""
    size = PRESETS["digits"].common["image_size"]
    transform = build_eval_transform(size, resize=False)
    train = DigitsDataset("train", transform, image_size=size)
    test = DigitsDataset("test", transform, image_size=size)
    train_x, train_y = extract_features(lambda x: x.flatten(1), train)
    test_x, test_y = extract_features(lambda x: x.flatten(1), test)
    pixels = evaluate_features(train_x, train_y, test_x, test_y, NUM_CLASSES)
    return {"method": "raw pixels", "backbone": f"{3 * size**2}-d", "seed": None, **pixels}


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (method, backbone): mean +- std per probe, and the gain over random init."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["method"], row["backbone"]), []).append(row)
    random = {
        backbone: runs for (method, backbone), runs in groups.items() if method == "random init"
    }
    summary = []
    for (method, backbone), runs in groups.items():
        entry: dict[str, Any] = {"method": method, "backbone": backbone, "seeds": len(runs)}
        for key in PROBES:
            values = [run[key] for run in runs]
            entry[key] = fmt(values)
            entry[f"{key}_mean"], entry[f"{key}_std"] = mean_std(values)
            base = random.get(backbone)
            if base is not None and method not in ("random init", "raw pixels"):
                reference = [run[key] for run in base]
                gain = entry[f"{key}_mean"] - mean_std(reference)[0]
                mark = "*" if separated(values, reference) else ""
                entry[f"{key}_gain"] = f"{gain:+.2f}{mark}"
        walls = [run["train_wall_s"] for run in runs if run.get("train_wall_s")]
        entry["train_wall_s"] = f"{mean_std(walls)[0]:.0f}" if walls else ""
        summary.append(entry)
    return summary


def significant_pairs(rows: list[dict[str, Any]], methods: list[str]) -> list[str]:
    """Pairs of pretrained methods (same backbone) whose probe results are separated."""
    lines = []
    for key in PROBES:
        for i, a in enumerate(methods):
            for b in methods[i + 1 :]:
                va = [r[key] for r in rows if r["method"] == a]
                vb = [r[key] for r in rows if r["method"] == b]
                if va and vb and backbone_label(a) == backbone_label(b) and separated(va, vb):
                    hi, lo = (a, b) if mean_std(va)[0] > mean_std(vb)[0] else (b, a)
                    lines.append(f"- {PROBE_NAMES[key]}: {hi} > {lo}")
    return lines


def main() -> None:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    setting = {m: chosen_setting(args.best, m, args.shape) for m in args.methods}
    jobs = [
        Job(
            method,
            args.out / method / f"seed{seed}",
            ["--epochs", str(args.epochs), "--seed", str(seed), *hp_flags(setting[method])],
            {
                "seed": seed,
                "backbone": backbone_label(method),
                "epochs": args.epochs,
                "setting": setting[method],
            },
        )
        # Method by method: the first method's checkpoints (the demo's) are ready first.
        for method in args.methods
        for seed in args.seeds
    ]
    log = args.log or args.out / "log.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    rows = run_jobs(jobs, args.parallel, args.out / "logs", threads=args.threads, results_log=log)
    rows += [*random_init_rows(rows), raw_pixels()]
    summary = summarise(rows)
    tuning = (
        f"each method at the setting its validation search chose ({args.best}"
        + (f", the best at the '{args.shape}' heads: loss-isolating twins)" if args.shape else ")")
        if args.best
        else "`digits` preset"
    )
    train_min = sum(row.get("train_wall_s") or 0.0 for row in rows) / 60
    header = (
        f"Digits (32 px; pretrain and probes on the 1,257 training images, scored on the 540 test "
        f"images), {args.epochs} epochs, {tuning}, seeds "
        f"{', '.join(map(str, args.seeds))}: mean ± std; `*` = the gain over random init exceeds "
        f"the sum of both spreads. {platform.machine()}, {os.cpu_count()} cores, fp32, "
        f"{args.parallel} run(s) at a time; {train_min:.0f} min of training summed over the runs.\n"
    )
    columns = [("method", "method"), ("backbone", "backbone")]
    for key in PROBES:
        columns += [(key, f"{PROBE_NAMES[key]} (%)"), (f"{key}_gain", "vs random")]
    columns += [("train_wall_s", "train (s)")]
    table = markdown_table(summary, columns)
    pairs = significant_pairs(rows, [m for m in METHODS if m in args.methods])
    pairs_text = "Separated pairs (means differ by more than both spreads):\n" + (
        "\n".join(pairs) if pairs else "- none"
    )
    text = header + "\n" + table + "\n\n" + pairs_text + "\n"
    print("\n" + text)
    # Beside the log: with the log in benchmarks/results/, so are the tables built from it.
    (log.parent / "results.md").write_text(text)
    settings = {**vars(args), "out": str(args.out), "log": str(log)}
    presets = {m: PRESETS["digits"].settings(m) for m in args.methods}
    (log.parent / "results.json").write_text(
        json.dumps(
            {"settings": settings, "presets": presets, "rows": rows, "summary": summary},
            indent=2,
            default=str,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
