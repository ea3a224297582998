"""What a run saved, read for the report (standard library only): nothing is recomputed."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightly_matrix.user_files import METRICS_FILE, SPECTRUM_FILE, path_kind
from lightly_matrix.utils.checks import is_number

RESULTS_FILE = "results.json"
#: Sub-folder of mmengine's ``TIMESTAMP`` log folder holding the test's drawn images.
VIS_TEST_DIR = "vis_test"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

#: ``(step, epoch, value)`` rows of one logged quantity, in step order.
Curve = list[tuple[int, int | None, float]]


@dataclass
class PretrainRun:
    """A pretraining run folder as saved, and ``"file: reason"`` problems."""

    path: Path
    metrics: dict[str, Any] | None = None
    spectra: list[dict[str, Any]] = field(default_factory=list)
    curves: dict[str, Curve] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


@dataclass
class TransferRun:
    """A transfer work dir as saved, and ``"file: reason"`` problems."""

    path: Path
    results: dict[str, Any] | None = None
    curves: dict[str, Curve] = field(default_factory=dict)
    images: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def read_json(path: Path, problems: list[str]) -> dict[str, Any] | None:
    """A JSON object file; ``None`` if absent, and a problem noted if it is not one."""
    if not path.is_file():
        if path.exists():  # a folder or a special file where the run writes a file
            problems.append(f"{path.name}: is {path_kind(path)}, not a file")
        return None
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        problems.append(f"{path.name}: {err}")
        return None
    if not isinstance(value, dict):
        problems.append(f"{path.name}: not a JSON object")
        return None
    return value


def _rows(rows: Any, required: dict[str, type | tuple[type, ...]]) -> list[dict[str, Any]]:
    """The dict rows of ``rows`` whose ``required`` keys have the given types, by epoch."""
    kept = [row for row in (rows if isinstance(rows, list) else []) if isinstance(row, dict)]
    kept = [row for row in kept if all(isinstance(row.get(k), t) for k, t in required.items())]
    return sorted(kept, key=lambda row: row["epoch"])


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if is_number(value) else None


def read_csv_logs(log_root: Path, problems: list[str] | None = None) -> dict[str, Curve]:
    """Lightning's ``CSVLogger`` files under ``log_root`` (``version_*/metrics.csv``), merged; rows
    an earlier version logged from a resumed version's first step on were redone, and dropped."""
    problems = [] if problems is None else problems
    rows: list[dict[str, str]] = []
    versions = sorted(
        log_root.glob("version_*/metrics.csv"),
        key=lambda p: int(p.parent.name[8:]) if p.parent.name[8:].isdigit() else -1,
    )
    for path in versions:
        try:
            with open(path, newline="") as f:
                new = [row for row in csv.DictReader(f) if (row.get("step") or "").isdigit()]
        except (OSError, UnicodeDecodeError, csv.Error) as err:
            problems.append(f"{path.relative_to(log_root.parent)}: {err}")
            continue
        if new:
            first = min(int(row["step"]) for row in new)
            rows = [row for row in rows if int(row["step"]) < first] + new
    curves: dict[str, Curve] = {}
    for row in rows:
        epoch = _number(row.get("epoch") or "")
        point = (int(row["step"]), None if epoch is None else int(epoch))
        for name, text in row.items():
            value = _number(text) if name not in (None, "step", "epoch") and text else None
            if value is not None:
                curves.setdefault(name, []).append((*point, value))
    for curve in curves.values():
        curve.sort(key=lambda point: point[0])
    return curves


def load_pretrain(path: Path) -> PretrainRun:
    """Reads what a pretraining run saved (any part may be missing)."""
    run = PretrainRun(path)
    run.metrics = read_json(path / METRICS_FILE, run.problems)
    if run.metrics is not None:  # an edited file may hold rows a section cannot draw
        history = _rows(run.metrics.get("history"), {"epoch": int})
        run.metrics["history"] = [{k: v for k, v in r.items() if is_number(v)} for r in history]
        if not isinstance(run.metrics.get("run"), dict):
            run.metrics["run"] = {}
    spectrum = read_json(path / SPECTRUM_FILE, run.problems) or {}
    listed = spectrum.get("evaluations")
    rows = _rows(listed, {"epoch": int, "eigenvalues": list, "effective_rank": (int, float)})
    run.spectra = [e for e in rows if e["eigenvalues"] and all(map(is_number, e["eigenvalues"]))]
    bad = len(listed) - len(run.spectra) if isinstance(listed, list) else 0
    if bad:
        run.problems.append(f"{SPECTRUM_FILE}: {bad} malformed evaluation(s), not drawn")
    run.curves = read_csv_logs(path / "csv", run.problems)
    return run


def read_scalars(path: Path, problems: list[str]) -> dict[str, Curve]:
    """mmengine's ``scalars.json`` (one JSON object per line) by name; bad lines are skipped."""
    curves: dict[str, Curve] = {}
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        problems.append(f"{path.name}: {err}")
        return curves
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a run killed mid-write leaves a partial last line
        if not isinstance(record, dict) or not isinstance(record.get("step"), int):
            continue
        for name, value in record.items():
            if name not in ("step", "iter", "epoch") and is_number(value):
                curves.setdefault(name, []).append((record["step"], None, float(value)))
    return curves


def load_transfer(path: Path) -> TransferRun:
    """Reads what a transfer work dir saved: the newest Runner's logs and images."""
    run = TransferRun(path)
    run.results = read_json(path / RESULTS_FILE, run.problems)
    for key in ("metrics", "bbox", "segm"):  # what the sections index into
        if run.results is not None and not isinstance(run.results.get(key, {}), dict):
            run.problems.append(f"{RESULTS_FILE}: '{key}' is not a JSON object")
            del run.results[key]
    # mmengine's TIMESTAMP folders, one per Runner: the newest one's log.
    scalar_files = [f for f in sorted(path.glob("*/vis_data/scalars.json")) if f.is_file()]
    if scalar_files:
        run.curves = read_scalars(scalar_files[-1], run.problems)
    # The test may run in a Runner of its own, whose TIMESTAMP folder has no scalars.
    for folder in sorted(path.glob(f"*/{VIS_TEST_DIR}"), reverse=True):
        run.images = sorted(p for p in folder.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if run.images:
            break
    return run


def is_pretrain_run(path: Path) -> bool:
    """Whether ``path`` holds anything a pretraining run writes."""
    return any((path / name).exists() for name in (METRICS_FILE, SPECTRUM_FILE, "csv", "last.ckpt"))


def is_transfer_run(path: Path) -> bool:
    """Whether ``path`` holds anything ``lightly-matrix transfer`` writes."""
    return (path / RESULTS_FILE).is_file() or any(p.is_dir() for p in path.glob("*/vis_data"))


def parse_spread(text: Any) -> tuple[float, float] | None:
    """``"92.35 ± 0.57"`` (a reference file's mean ± std) as ``(92.35, 0.57)``."""
    mean, _, std = (_number(part) for part in str(text).replace("+-", "±").partition("±"))
    return None if mean is None or std is None else (mean, std)
