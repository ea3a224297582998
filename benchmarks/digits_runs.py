"""Shared by the digits benchmarks: run ``lightly-matrix pretrain`` jobs side by side and read
their metrics; summarise seeds as mean +- std.

Each job is a subprocess of the CLI (the same code path a user runs) with its own thread count, so
two single-threaded jobs can share 2 cores (small ResNets use a second thread poorly). A job is not
run again when its result is in the results log (a JSON line per finished run, keyed by
``method/folder``: the log can be kept in ``benchmarks/results/`` while the run folders, with their
checkpoints, stay in ``runs/``) or its folder holds a finished run (``train_wall_s`` in
``metrics.json``); an unfinished one continues from its ``last.ckpt``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightly_matrix.utils.checks import positive_int

PROBES = ("knn_top1", "linear_top1", "few_label_top1")


@dataclass
class Job:
    """One pretraining run.

    Attributes:
        method: ``--method``.
        out: Run folder.
        flags: Further CLI flags (``--epochs``, ``--seed``, ``--lr``, ``--hp k=v``, ...).
        tag: Free-form labels carried into the result row.
    """

    method: str
    out: Path
    flags: list[str] = field(default_factory=list)
    tag: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The job's name in a results log: ``method/folder``."""
        return run_key(self.out)


def run_key(out: str | Path) -> str:
    """``method/folder`` of a run folder ``.../method/folder``."""
    path = Path(out)
    return f"{path.parent.name}/{path.name}"


def read_log(path: Path) -> dict[str, dict[str, Any]]:
    """The finished runs in a results log, by :func:`run_key` (rows without ``run`` use ``out``)."""
    if not path.exists():
        return {}
    rows = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return {row.get("run") or run_key(row["out"]): row for row in rows}


def hp_flags(setting: dict[str, Any]) -> list[str]:
    """``--lr`` and ``--hp key=value`` flags of a setting ``{"lr", "hp"}`` (none for ``{}``)."""
    flags = ["--lr", str(setting["lr"])] if setting else []
    return flags + [f for k, v in setting.get("hp", {}).items() for f in ("--hp", f"{k}={v}")]


def add_run_options(parser: argparse.ArgumentParser, parallel: int) -> None:
    """``--parallel`` and ``--threads``: how the runs share the machine's cores."""
    parser.add_argument(
        "--parallel",
        type=positive_int,
        default=parallel,
        help=f"runs at a time, threads split between them (default {parallel})",
    )
    parser.add_argument(
        "--threads", type=positive_int, help="threads per run (default: cores / --parallel)"
    )


def finished(out: Path) -> dict[str, Any] | None:
    """The metrics of a finished run in ``out``, else ``None``."""
    path = out / "metrics.json"
    if not path.exists():
        return None
    metrics = json.loads(path.read_text())
    return metrics if "train_wall_s" in metrics.get("run", {}) else None


def run_job(job: Job, threads: int, log_dir: Path) -> dict[str, Any]:
    """Runs (or continues, or reuses) ``job``; returns its result row."""
    metrics = finished(job.out)
    if metrics is None:
        resume = ["--resume", str(job.out)] if (job.out / "last.ckpt").exists() else []
        argv = [sys.executable, "-m", "lightly_matrix", "pretrain", "--method", job.method]
        # No HTML report: the benchmark reads metrics.json, and a report costs 3-8 s a run.
        argv += ["--data", "digits", "--no-progress", "--no-report", "--out", str(job.out)]
        argv += job.flags
        if resume:  # the checkpoint holds every setting; only the folder is needed
            argv = [
                sys.executable,
                "-m",
                "lightly_matrix",
                "pretrain",
                "--no-progress",
                "--no-report",
            ]
            argv += resume
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        log_dir.mkdir(parents=True, exist_ok=True)
        log = log_dir / f"{job.out.parent.name}-{job.out.name}.log"
        start = time.perf_counter()
        with log.open("a") as handle:
            status = subprocess.run(
                argv, env=env, stdout=handle, stderr=subprocess.STDOUT
            ).returncode
        if status != 0:
            raise RuntimeError(f"{' '.join(argv)} failed with status {status}; see {log}")
        metrics = finished(job.out)
        if metrics is None:
            raise RuntimeError(f"{job.out} has no finished metrics.json; see {log}")
        print(f"  {job.out}: {time.perf_counter() - start:.0f} s", flush=True)
    history = metrics["history"]
    return {
        "method": job.method,
        "out": str(job.out),
        **job.tag,
        "before": {k: history[0][k] for k in PROBES} if history[0]["epoch"] == 0 else None,
        **{k: metrics["final"][k] for k in PROBES},
        "train_wall_s": metrics["run"]["train_wall_s"],
    }


def logged_row(job: Job, row: dict[str, Any], log: Path) -> dict[str, Any]:
    """``row``, the logged result of ``job``, after checking it was run with the job's settings."""
    wrong = {k: (row.get(k), v) for k, v in job.tag.items() if row.get(k) != v}
    if wrong or row["method"] != job.method:
        raise SystemExit(
            f"{log} holds {job.key} with other settings ({wrong or row['method']}, logged vs "
            "asked): pass another --log (or --out), or remove that line to run it again"
        )
    return row


def run_jobs(
    jobs: Sequence[Job],
    parallel: int,
    log_dir: Path,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    threads: int | None = None,
    results_log: Path | None = None,
) -> list[dict[str, Any]]:
    """Runs ``jobs``, ``parallel`` at a time, on ``threads`` each (default: cores // parallel).

    With ``results_log``, jobs logged there are reused, and each new result is appended to it as
    soon as its run finishes (so a killed search loses only its unfinished runs).
    """
    threads = threads or max(1, (os.cpu_count() or 1) // parallel)
    done = read_log(results_log) if results_log is not None else {}
    # Checked before anything runs: a stale log must not cost hours of other runs first.
    reused = {
        job.key: logged_row(job, done[job.key], results_log)
        for job in jobs
        if results_log is not None and job.key in done
    }
    lock = threading.Lock()

    def one(job: Job) -> dict[str, Any]:
        if job.key in reused:
            row = reused[job.key]
        else:
            row = {"run": job.key, **run_job(job, threads, log_dir)}
            if results_log is not None:
                with lock, results_log.open("a") as handle:
                    handle.write(json.dumps(row) + "\n")
        if on_result is not None:
            with lock:
                on_result(row)
        return row

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        return list(pool.map(one, jobs))


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else 0.0)


def fmt(values: Sequence[float]) -> str:
    """``mean +- std`` with 2 decimals (just the value for one seed)."""
    mean, std = mean_std(values)
    return f"{mean:.2f}" if len(values) == 1 else f"{mean:.2f} ± {std:.2f}"


def separated(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether two seed sets differ by more than their spread: |mean a - mean b| > std a + std b.

    A plain, conservative rule for 3 seeds (a t-test has little power at n = 3).
    """
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    return not math.isclose(ma, mb) and abs(ma - mb) > sa + sb
