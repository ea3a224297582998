"""What the stages share: environment record, time budget, resumable results, timing, tables."""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from lightly_matrix.utils.text import first_line
from lightly_matrix.utils.text import markdown_table as _markdown_table

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "gpu_suite"
#: Dry runs never write next to real measurements.
DRY_RUN_OUT = ROOT / "work_dirs" / "gpu_suite_dry_run"
#: Exit status of a stage that ran out of its time budget: run the same stage again to continue.
INCOMPLETE = 3
DRY_RUN_BANNER = (
    "**DRY RUN: CPU-sized settings to exercise the suite; these numbers are not measurements.**"
)
PACKAGES = (
    "torch",
    "torchvision",
    "lightly",
    "pytorch-lightning",
    "timm",
    "mmcv",
    "mmdet",
    "mmengine",
)


class SuiteError(Exception):
    """A problem the user can fix; printed as one line."""


def now() -> str:
    return datetime.datetime.now().isoformat(timespec="seconds")


def _run(command: Sequence[str]) -> str | None:
    """stdout of a command, or None when it is missing or fails."""
    if shutil.which(command[0]) is None:
        return None
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True)
    except (subprocess.SubprocessError, OSError):
        return None
    return out.stdout.strip()


def environment() -> dict[str, Any]:
    """Device, driver, library versions and CPU count: what a number depends on."""
    import torch

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    env: dict[str, Any] = {
        "recorded": now(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "versions": versions,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cuda_available": torch.cuda.is_available(),
        "device": "cpu",
        "device_name": f"{platform.processor() or platform.machine()} CPU",
        "gpu_count": 0,
        "driver": None,
        "mmcv_ops_cuda": None,
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env.update(
            device="cuda",
            device_name=props.name,
            gpu_count=torch.cuda.device_count(),
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            compute_capability=f"{props.major}.{props.minor}",
        )
    smi = _run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
    if smi:
        env["driver"] = smi.splitlines()[0].strip()
    try:
        from mmcv.ops import get_compiling_cuda_version

        env["mmcv_ops_cuda"] = get_compiling_cuda_version()
    except Exception:  # mmcv without compiled ops, or not installed
        pass
    commit = _run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    if commit:
        dirty = _run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"])
        env["git_commit"] = commit + ("-dirty" if dirty else "")
    return env


def environment_line(env: dict[str, Any]) -> str:
    """One Markdown line naming the machine and the stack."""
    v = env["versions"]
    parts = [
        env["device_name"],
        f"driver {env['driver']}" if env.get("driver") else None,
        f"torch {v.get('torch')}",
        f"torch built for CUDA {env['torch_cuda']}" if env.get("torch_cuda") else None,
        f"cuDNN {env['cudnn']}" if env.get("cudnn") else None,
        f"mmcv {v.get('mmcv')}",
        f"mmdet {v.get('mmdet')}",
        f"{env['cpu_count']} CPUs",
        f"commit {env['git_commit']}" if env.get("git_commit") else None,
    ]
    return "Environment: " + ", ".join(p for p in parts if p) + "."


class Budget:
    """Seconds left for this call of a stage (the device runs one command for at most 10 min)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = time.perf_counter()

    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.start)


class ResultStore:
    """The rows of one stage in ``OUT/STAGE.json``, written after every row.

    Rows are keyed; a row already present for the same settings and device is reused, so a stage
    that was stopped continues. A file written with other settings, on another device or in the
    other mode (dry run / measurement) is moved aside to ``STAGE-TIMESTAMP.json``, never
    overwritten; so is any file when ``fresh`` is set.
    """

    def __init__(
        self,
        out_dir: Path,
        stage: str,
        settings: dict[str, Any],
        env: dict[str, Any],
        dry_run: bool,
        fresh: bool = False,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.stage = stage
        self.path = self.out_dir / f"{stage}.json"
        identity = {"settings": settings, "device_name": env["device_name"], "dry_run": dry_run}
        self.data: dict[str, Any] = {
            "stage": stage,
            "mode": "dry-run" if dry_run else "measurement",
            **identity,
            "env": env,
            "started": now(),
            "complete": False,
            "rows": [],
        }
        if self.path.exists():
            old = json.loads(self.path.read_text())
            same = all(old.get(k) == v for k, v in _jsonable(identity).items())
            if same and not fresh:
                self.data["rows"] = old.get("rows", [])
                self.data["started"] = old.get("started", self.data["started"])
                self.data.update({k: v for k, v in old.items() if k not in self.data})
            else:
                self._archive()
        self._index = {row["key"]: row for row in self.data["rows"]}

    def _archive(self) -> None:
        stamp = datetime.datetime.fromtimestamp(self.path.stat().st_mtime).strftime("%Y%m%d-%H%M%S")
        for suffix in (".json", ".md"):
            src = self.path.with_suffix(suffix)
            if src.exists():
                dst = src.with_name(f"{self.stage}-{stamp}{suffix}")
                n = 1
                while dst.exists():
                    dst = src.with_name(f"{self.stage}-{stamp}-{n}{suffix}")
                    n += 1
                src.rename(dst)
                print(f"[{self.stage}] earlier results kept as {dst}", flush=True)

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.data["rows"]

    def get(self, key: str) -> dict[str, Any] | None:
        return self._index.get(key)

    def add(self, row: dict[str, Any]) -> dict[str, Any]:
        row = {"mode": self.data["mode"], **row}
        if row["key"] in self._index:
            self.rows[self.rows.index(self._index[row["key"]])] = row
        else:
            self.rows.append(row)
        self._index[row["key"]] = row
        self.save()
        return row

    def set(self, name: str, value: Any) -> None:
        self.data[name] = value
        self.save()

    def save(self, markdown: str | None = None) -> None:
        self.data["updated"] = now()
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(_jsonable(self.data), indent=2) + "\n")
        tmp.replace(self.path)
        if markdown is not None:
            self.path.with_suffix(".md").write_text(markdown.rstrip() + "\n")


def _jsonable(value: Any) -> Any:
    """Tuples as lists, so that settings compare equal after a JSON round trip."""
    return json.loads(json.dumps(value))


def header(title: str, env: dict[str, Any], dry_run: bool, notes: Iterable[str] = ()) -> str:
    lines = [f"## {title}", ""]
    if dry_run:
        lines += [DRY_RUN_BANNER, ""]
    lines += [environment_line(env), *notes, ""]
    return "\n".join(lines)


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:  # NaN
            return "nan"
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(columns: Sequence[tuple[str, str]], rows: Iterable[dict[str, Any]]) -> str:
    """``columns``: (row key, header) pairs; cells as :func:`fmt` writes them ("-" for none)."""
    return _markdown_table(rows, columns, cell=fmt)


def timed_runs(
    step: Callable[[], Any], device: str, warmup: int, repeats: int
) -> tuple[list[float], Any]:
    """Seconds per call of ``step`` (CUDA events on a GPU), after ``warmup`` untimed calls."""
    import torch

    result = None
    for _ in range(warmup):
        result = step()
    if device == "cuda":
        torch.cuda.synchronize()
        events = [
            (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
            for _ in range(repeats)
        ]
        for start, end in events:
            start.record()
            result = step()
            end.record()
        torch.cuda.synchronize()
        return [start.elapsed_time(end) / 1000 for start, end in events], result
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = step()
        times.append(time.perf_counter() - t0)
    return times, result


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    return ordered[n // 2] if n % 2 else 0.5 * (ordered[n // 2 - 1] + ordered[n // 2])


def reset_peak(device: str) -> int:
    """Reset the peak-memory counter; returns the bytes allocated now (the baseline)."""
    import torch

    if device != "cuda":
        return 0
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    return torch.cuda.memory_allocated()


def peak_mib(device: str, baseline: int) -> float | None:
    """Peak allocated memory above ``baseline`` in MiB (None on the CPU: not measured)."""
    import torch

    if device != "cuda":
        return None
    return (torch.cuda.max_memory_allocated() - baseline) / 2**20


def short_error(err: BaseException) -> str:
    """``Type: first line`` of ``err`` (the type alone if it has no message), <= 200 chars."""
    name = type(err).__name__
    return (f"{name}: {first_line(err)}" if str(err).strip() else name)[:200]
