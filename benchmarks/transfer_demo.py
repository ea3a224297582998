"""Demo transfer benchmark: random init vs pretrained backbones, over several seeds.

Runs ``lightly-matrix transfer --demo`` (Mask R-CNN R18-FPN on the generated coloured shapes)
without a checkpoint and with each given checkpoint, once per ``--seeds`` value (the seed of the
detector's initialisation, data order and augmentations), then prints box and mask AP as mean +-
std with wall times; ``*`` marks a gain over random init beyond the sum of both spreads. A
finished run in OUT is reused, and each finished (row, seed) is appended to a results log
(``--log``) that stands in for its run and checkpoint later. ``{seed}`` in a checkpoint path is
replaced by the seed, so pretraining seed s pairs with transfer seed s. Minutes per run on 2 cores.

    python benchmarks/transfer_demo.py 'runs/bench_digits/matrix_ssl/seed{seed}/last.ckpt' \
        --names matrix_ssl --seeds 0 1 2
    python benchmarks/transfer_demo.py a.ckpt b.ckpt --names a b --out runs/td --max-iters 60
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from digits_runs import fmt, mean_std, read_log, separated

from lightly_matrix.utils.text import markdown_table

METRICS = (("bbox", "mAP", "AP_bb"), ("bbox", "AP50", "AP50_bb"), ("segm", "mAP", "AP_mk"))


def _run(checkpoint: Path | None, work_dir: Path, seed: int, extra: list[str]) -> dict[str, Any]:
    results_file = work_dir / "results.json"
    if not results_file.exists():
        command = [sys.executable, "-m", "lightly_matrix.transfer", "--demo"]
        command += ["--work-dir", str(work_dir), "--seed", str(seed), *extra]
        if checkpoint is not None:
            command.insert(3, str(checkpoint))
        start = time.perf_counter()
        subprocess.run(command, check=True)
        results = json.loads(results_file.read_text())
        results["wall_s"] = time.perf_counter() - start
        results_file.write_text(json.dumps(results, indent=1) + "\n")
    return json.loads(results_file.read_text())


def main() -> int:
    """Run the baseline and each checkpoint for every seed, then print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="*", help="checkpoints ('{seed}': the seed)")
    parser.add_argument("--names", nargs="*", help="row names of the checkpoints")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("runs/transfer_demo"))
    parser.add_argument("--no-baseline", action="store_true", help="skip the random-init rows")
    parser.add_argument(
        "--log",
        type=Path,
        help="results log (default OUT/log.jsonl): a line per finished (row, seed); logged "
        "runs are not run again and need no checkpoint, so a log kept in benchmarks/results/ "
        "carries the table across sessions",
    )
    # Options this script does not know (e.g. --max-iters 60) go to `lightly-matrix transfer`.
    args, extra = parser.parse_known_args()
    names = args.names or [f"{Path(c).parent.name}-{Path(c).stem}" for c in args.checkpoints]
    if len(names) != len(args.checkpoints):
        parser.error("--names needs one name per checkpoint")
    runs: list[tuple[str, str | None]] = [] if args.no_baseline else [("random init", None)]
    runs += zip(names, args.checkpoints, strict=True)
    extra = [a for a in extra if a != "--"]
    log = args.log or args.out / "log.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    logged = read_log(log)
    # Checked before anything runs: rows fine-tuned with other options must not mix into one table.
    for key, entry in logged.items():
        if key.rsplit("/", 1)[0] in {name for name, _ in runs} and entry["extra_args"] != extra:
            raise SystemExit(
                f"{log} holds {key} run with {entry['extra_args']}, not {extra}: "
                "pass another --log (or --out)"
            )
    raw: dict[str, list[dict[str, Any]]] = {}
    for seed in args.seeds:  # seeds outermost: a cut-short run still has every row once
        for name, checkpoint in runs:
            work_dir = args.out / name.replace(" ", "_") / f"seed{seed}"
            key = f"{name}/seed{seed}"
            path = None if checkpoint is None else Path(checkpoint.replace("{seed}", str(seed)))
            if key in logged:
                raw.setdefault(name, []).append(logged[key])
                continue
            if path is not None and not path.exists():
                raise SystemExit(f"{key}: no checkpoint {path} and no result in {log}")
            row: dict[str, Any] = {
                "run": key,
                "seed": seed,
                "source": str(path),
                "extra_args": extra,
            }
            row.update(_run(path, work_dir, seed, extra))
            with log.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
            raw.setdefault(name, []).append(row)
    baseline = raw.get("random init")
    rows = []
    for name, results in raw.items():
        row = {"row": name, "seeds": len(results)}
        for iou_type, metric, label in METRICS:
            values = [100 * r[iou_type][metric] for r in results]
            row[label] = fmt(values)
            if baseline is not None and name != "random init":
                ref = [100 * r[iou_type][metric] for r in baseline]
                gain = mean_std(values)[0] - mean_std(ref)[0]
                row[f"{label}_gain"] = f"{gain:+.1f}{'*' if separated(values, ref) else ''}"
        row["train_min"] = f"{mean_std([r['train_time_s'] for r in results])[0] / 60:.1f}"
        walls = [r["wall_s"] for r in results if "wall_s" in r]
        row["wall_min"] = f"{mean_std(walls)[0] / 60:.1f}" if walls else ""
        rows.append(row)
    columns = [("row", "backbone init"), ("seeds", "seeds")]
    for _, _, label in METRICS:
        columns += [(label, label), (f"{label}_gain", "vs random")]
    columns += [("train_min", "train (min)"), ("wall_min", "wall (min)")]
    table = markdown_table(rows, columns)
    print("\n" + table + "\n")
    (log.parent / "results.md").write_text(table + "\n")
    summary = {"extra_args": extra, "seeds": args.seeds, "rows": rows, "raw": raw}
    (log.parent / "results.json").write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
