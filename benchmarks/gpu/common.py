"""What the suite's scripts share: options, peak memory, the device record, JSON + Markdown."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import importlib.metadata
import json
import platform
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from lightly_matrix.errors import first_line
from lightly_matrix.utils.text import markdown_row
from lightly_matrix.utils.text import markdown_table as _markdown_table

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "gpu_suite"
#: A dry run never writes next to measurements.
DRY_RUN_OUT = ROOT / "work_dirs" / "gpu_suite_dry_run"
DRY_RUN_BANNER = "**Dry run: CPU, tiny sizes. It exercises the code; it measures nothing.**"
__all__ = ["markdown_row"]


def parser(doc: str | None) -> argparse.ArgumentParser:
    """The options every script of the suite takes: ``--dry-run`` and ``--out``."""
    p = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes (what CI runs)")
    p.add_argument("--out", type=Path, help=f"results folder (default {DEFAULT_OUT})")
    return p


def _refuse(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def resolve(args: argparse.Namespace, device: str = "cuda") -> str:
    """Checks ``args`` (one line on stderr and exit status 2 if wrong); returns the device."""
    import torch

    args.out = Path(args.out or (DRY_RUN_OUT if args.dry_run else DEFAULT_OUT)).resolve()
    if args.dry_run and args.out == DEFAULT_OUT:
        _refuse(f"a dry run does not write into {DEFAULT_OUT}: pass another --out")
    device = "cpu" if args.dry_run else device
    if device == "cuda" and not torch.cuda.is_available():
        _refuse("torch sees no CUDA device; run on a GPU machine, or pass --dry-run")
    if args.dry_run:
        torch.set_num_threads(1)  # a small shared CI machine: one thread is fastest
    return device


def _status_kib(field: str) -> int:
    return int(re.findall(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text())[0])


def peak_start(device: str) -> int | None:
    """Resets the peak-memory counter; returns the bytes in use now (None: no counter here)."""
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    # Freed blocks above 64 KiB go back to the OS, so that the resident peak is this measurement's.
    with contextlib.suppress(AttributeError, OSError):
        ctypes.CDLL(None).mallopt(-3, 1 << 16)  # glibc's M_MMAP_THRESHOLD
    try:  # Linux: "5" resets the resident high-water mark (VmHWM) to the current size.
        Path("/proc/self/clear_refs").write_text("5")
        return _status_kib("VmRSS") * 1024
    except OSError:
        return None


def peak_mib(device: str, start: int | None) -> float | None:
    """Peak memory above ``start`` in MiB: allocated on a GPU, resident on the CPU."""
    import torch

    if start is None:
        return None
    now = torch.cuda.max_memory_allocated() if device == "cuda" else _status_kib("VmHWM") * 1024
    return (now - start) / 2**20


def device_record(device: str) -> dict[str, Any]:
    """The hardware and versions a number depends on (``torch.utils.collect_env``'s probes)."""
    import torch
    from torch.utils import collect_env

    record: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if device == "cuda" else f"{platform.machine()} CPU",
        "driver": collect_env.get_nvidia_driver_version(collect_env.run),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if device == "cuda" else None,
        "torch": torch.__version__,
    }
    for name in ("lightly", "pytorch-lightning", "timm", "mmcv", "mmdet", "mmengine"):
        try:
            record[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            record[name] = None
    return record


def fmt(value: Any, digits: int = 2) -> str:
    """A table cell: ``-`` for none, yes/no, floats with ``digits`` decimals."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "nan" if value != value else f"{value:.{digits}f}"
    return str(value)


def markdown_table(columns: Sequence[tuple[str, str]], rows: Iterable[dict[str, Any]]) -> str:
    """``columns``: (row key, header) pairs; cells as :func:`fmt` writes them."""
    return _markdown_table(rows, columns, cell=fmt)


def short_error(err: BaseException) -> str:
    """``Type: first line`` of ``err`` (the type alone if it has no message), <= 200 chars."""
    name = type(err).__name__
    return (f"{name}: {first_line(err)}" if str(err).strip() else name)[:200]


def write(
    args: argparse.Namespace,
    name: str,
    title: str,
    rows: list[dict[str, Any]],
    markdown: str,
    device: str,
    notes: Sequence[str] = (),
) -> Path:
    """Writes ``OUT/name.json`` (settings, device record, rows) and ``OUT/name.md``.

    The files of an earlier run stay beside, renamed with their time: a result is never lost.
    """
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / f"{name}.json"
    for old in (json_path, json_path.with_suffix(".md")):
        if old.exists():
            stamp = datetime.datetime.fromtimestamp(old.stat().st_mtime).strftime("%Y%m%d-%H%M%S")
            kept = old.with_name(f"{name}-{stamp}{old.suffix}")
            while kept.exists():
                kept = kept.with_stem(kept.stem + "+")
            old.rename(kept)
    record = device_record(device)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    data = {"table": name, "dry_run": args.dry_run, "settings": settings, "env": record}
    json_path.write_text(json.dumps({**data, "rows": rows}, indent=1) + "\n")
    versions = ", ".join(f"{k} {v}" for k, v in record.items() if v and k != "device")
    text = [f"## {title}", "", *([DRY_RUN_BANNER, ""] if args.dry_run else [])]
    text += [f"{record['device']}; {versions}.", *notes, "", markdown]
    json_path.with_suffix(".md").write_text("\n".join(text).rstrip() + "\n")
    print("\n".join(text), flush=True)
    return json_path
