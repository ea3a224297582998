"""``python -m benchmarks.gpu STAGE [STAGE ...] [--dry-run] [--out DIR]``: the GPU suite's stages.

Stages (each fits one 10-minute call on one H100; run one again to continue an interrupted one):

    env           record device, driver, torch/CUDA/cuDNN, mmcv/mmdet versions, CPU count
    gpu-tests     pytest -m gpu (the dry run runs the gpu-marked files, which skip on a CPU)
    loss          table 1: loss cost fwd+bwd, fp32 and bf16, and a short profile
    loss-compile  table 1 for our losses under torch.compile
    pretrain      table 2: pretraining throughput and the loss's share of a step
    stability     bf16-mixed: no NaN in N training steps of our methods
    mmdet         table 3: Mask R-CNN R50-FPN / R50-C4 iterations/s, AMP off and on
    report        summary.md / summary.json: goals with pass/fail, all tables

Several stages run one after the other in one process, each with its own time budget.
Exit status: 0 done, 2 a usage problem (printed as one line), 3 a stage's time budget ran out
before it finished (its finished rows are kept: run it again, or pass --until-complete).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from benchmarks.gpu import report
from benchmarks.gpu.common import (
    DEFAULT_OUT,
    DRY_RUN_OUT,
    INCOMPLETE,
    ROOT,
    Budget,
    ResultStore,
    SuiteError,
    environment,
    environment_line,
    header,
    markdown_table,
)

STAGES = ("env", "gpu-tests", "loss", "loss-compile", "pretrain", "stability", "mmdet", "report")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("stages", nargs="+", choices=STAGES, metavar="STAGE")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="CPU-sized settings (tiny shapes, 1-2 steps); rows are marked dry-run",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"results directory (default {DEFAULT_OUT.relative_to(ROOT)}, or "
        f"{DRY_RUN_OUT.relative_to(ROOT)} with --dry-run)",
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=float(os.environ.get("GPU_SUITE_BUDGET_S", 540)),
        help="stop starting new rows after this many seconds (default 540, env GPU_SUITE_BUDGET_S)",
    )
    parser.add_argument(
        "--until-complete",
        action="store_true",
        help="re-run a stage whose budget ran out until it completes (no 10-minute limit)",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="ignore finished rows (the old file is kept as STAGE-TIMESTAMP.json)",
    )
    return parser.parse_args(argv)


def _check_device(dry_run: bool) -> None:
    import torch

    if not dry_run and not torch.cuda.is_available():
        raise SuiteError(
            "no CUDA device (torch.cuda.is_available() is False); run the suite on a GPU machine, "
            "or pass --dry-run for the CPU-sized check"
        )


def _gpu_test_files() -> list[str]:
    """Test files that use the ``gpu`` mark (the dry run runs only these)."""
    pattern = re.compile(r"pytest\.mark\.gpu\b")
    return sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "tests").rglob("test_*.py")
        if pattern.search(p.read_text())
    )


def gpu_tests(args: argparse.Namespace, env: dict[str, Any]) -> bool:
    """``pytest -m gpu`` in a subprocess; the counts come from its JUnit XML."""
    store = ResultStore(args.out, "gpu_tests", {"marker": "gpu"}, env, args.dry_run, args.fresh)
    xml = args.out / "gpu_tests.xml"
    files = _gpu_test_files() if args.dry_run else []
    command = [sys.executable, "-m", "pytest", "-m", "gpu", "-p", "no:cacheprovider", "-q"]
    command += [f"--junitxml={xml}", *files]
    print("[gpu-tests] " + " ".join(command), flush=True)
    start = time.perf_counter()
    rc = subprocess.call(command, cwd=ROOT, env=os.environ.copy())
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    failed_names = []
    if xml.exists():
        root = ET.parse(xml).getroot()
        for suite in root.iter("testsuite"):
            for key in counts:
                counts[key] += int(suite.get(key, 0))
        for case in root.iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                failed_names.append(f"{case.get('classname')}::{case.get('name')}")
    row = {
        "key": "pytest -m gpu",
        "command": " ".join(command[1:]),
        "exit_code": rc,
        "passed": counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"],
        "failed": counts["failures"],
        "errors": counts["errors"],
        "skipped": counts["skipped"],
        "failed_tests": failed_names,
        "wall_s": time.perf_counter() - start,
    }
    store.add(row)
    store.set("complete", True)
    columns = [(k, k) for k in ("passed", "failed", "errors", "skipped", "exit_code", "mode")]
    store.save(header("pytest -m gpu", env, args.dry_run) + "\n" + markdown_table(columns, [row]))
    return True


def run_stage(args: argparse.Namespace, stage: str, env: dict[str, Any], fresh: bool) -> bool:
    """Runs one stage; returns False when its budget ran out first."""
    if stage in ("env", "report"):
        return True
    if stage == "gpu-tests":
        return gpu_tests(args, env)
    budget = Budget(args.budget_s)
    if stage in ("loss", "loss-compile"):
        from benchmarks.gpu import loss_cost as stage_module

        compiled = stage == "loss-compile"
        name = "loss_compile" if compiled else "loss"
    elif stage in ("pretrain", "stability"):
        from benchmarks.gpu import pretrain_speed as stage_module

        name = stage
    else:
        from benchmarks.gpu import detection as stage_module

        name = "mmdet"
    cfg = stage_module.DRY if args.dry_run else stage_module.FULL
    store = ResultStore(args.out, name, cfg, env, args.dry_run, fresh)
    if stage in ("loss", "loss-compile"):
        return stage_module.run(cfg, store, budget, compiled, args.dry_run)
    if stage == "pretrain":
        return stage_module.run_throughput(cfg, store, budget, args.dry_run)
    if stage == "stability":
        return stage_module.run_stability(cfg, store, budget, args.dry_run)
    return stage_module.run(cfg, store, budget, args.dry_run)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out = (args.out or (DRY_RUN_OUT if args.dry_run else DEFAULT_OUT)).resolve()
    if args.dry_run and args.out == DEFAULT_OUT.resolve():
        print(
            f"error: --dry-run must not write into {DEFAULT_OUT} (it holds measurements)",
            file=sys.stderr,
        )
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    if args.dry_run:
        # One thread: on a small shared CI machine, two spinning OpenMP threads per process are
        # several times slower than one.
        os.environ["OMP_NUM_THREADS"] = "1"
        import torch

        torch.set_num_threads(1)
    env: dict[str, Any] = {}
    if set(args.stages) - {"env", "report"}:
        try:
            _check_device(args.dry_run)
        except SuiteError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    if args.stages != ["report"]:
        env = environment()
        (args.out / "env.json").write_text(json.dumps(env, indent=2) + "\n")
        print(environment_line(env), flush=True)
    incomplete = []
    for stage in args.stages:
        print(f"=== {stage} ({time.strftime('%H:%M:%S')}) ===", flush=True)
        try:
            complete = run_stage(args, stage, env, args.fresh)
            for _ in range(6 if args.until_complete else 0):
                if complete:
                    break
                print(f"[{stage}] budget used up; continuing with a new budget", flush=True)
                complete = run_stage(args, stage, env, fresh=False)
        except SuiteError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        summary = report.write(args.out)
        print(f"[{stage}] results in {args.out}; summary: {summary}", flush=True)
        if not complete:
            incomplete.append(stage)
            print(
                f"[{stage}] time budget ({args.budget_s:.0f} s) used up; finished rows are "
                "saved: run the same stage again to continue",
                flush=True,
            )
    if "report" in args.stages:
        report.print_goals(args.out)
    return INCOMPLETE if incomplete else 0


if __name__ == "__main__":
    sys.exit(main())
