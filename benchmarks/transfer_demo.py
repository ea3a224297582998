"""Demo transfer benchmark: random init vs a pretrained backbone, side by side.

Runs ``lightly-matrix transfer --demo`` (Mask R-CNN R18-FPN on the generated coloured shapes)
once without a checkpoint and once per given checkpoint, then prints a Markdown table with box
and mask AP and wall times. Each run takes minutes on 2 CPU cores; this is not a test.

    python benchmarks/transfer_demo.py runs/matrix_ssl/last.ckpt
    python benchmarks/transfer_demo.py            # newest runs/**/last.ckpt, if any
    python benchmarks/transfer_demo.py a.ckpt --out runs/td --max-iters 120  # options pass on
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import time
from pathlib import Path

from lightly_matrix.transfer import markdown_table


def _newest_checkpoint(root: Path) -> Path | None:
    found = sorted(root.glob("**/last.ckpt"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def _run(checkpoint: Path | None, work_dir: Path, extra: list[str]) -> tuple[dict, float]:
    command = [
        sys.executable,
        "-m",
        "lightly_matrix.transfer",
        "--demo",
        "--work-dir",
        str(work_dir),
    ]
    if checkpoint is not None:
        command.insert(3, str(checkpoint))
    start = time.perf_counter()
    subprocess.run([*command, *extra], check=True)
    wall = time.perf_counter() - start
    return json.loads((work_dir / "results.json").read_text()), wall


def main() -> int:
    """Run the baseline and each checkpoint, then print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="*", type=Path, help="pretrained checkpoints")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="where to look by default")
    parser.add_argument("--out", type=Path, default=None, help="work dir root (default: fresh)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the random-init run")
    # Options this script does not know (e.g. --max-iters 120) go to `lightly-matrix transfer`.
    args, extra = parser.parse_known_args()
    checkpoints = list(args.checkpoints)
    if not checkpoints and (newest := _newest_checkpoint(args.runs)) is not None:
        checkpoints = [newest]
    stamp = datetime.datetime.now().strftime("%Y%m%d_%H%M%S")
    root = args.out or Path("work_dirs") / "transfer_demo" / stamp
    extra = [a for a in extra if a != "--"]
    runs: list[Path | None] = ([] if args.no_baseline else [None]) + checkpoints
    rows, timings = [], []
    for i, checkpoint in enumerate(runs):
        name = "random" if checkpoint is None else f"{i}_{checkpoint.parent.name or 'ckpt'}"
        results, wall = _run(checkpoint, root / name, extra)
        rows.append(results["markdown_row"])
        timings.append(
            f"- {name}: wall {wall / 60:.1f} min (train {results['train_time_s'] / 60:.1f} min,"
            f" test {results['test_time_s']:.0f} s), source {checkpoint or 'none'}"
        )
    print("\n" + markdown_table(rows) + "\n")
    print("\n".join(timings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
