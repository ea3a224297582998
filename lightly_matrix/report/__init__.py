"""``lightly-matrix report RUN``: one self-contained ``report.html`` of what a run saved, written by
the ``report`` sub-command and at the end of ``pretrain`` and ``transfer`` runs."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lightly_matrix import __version__
from lightly_matrix.errors import UserError
from lightly_matrix.report.data import (
    is_pretrain_run,
    is_transfer_run,
    load_pretrain,
    load_transfer,
    read_json,
)
from lightly_matrix.report.html import GENERATOR, Section, page, paragraph
from lightly_matrix.user_files import path_kind, path_text
from lightly_matrix.utils.io import atomic_write_text

__all__ = ["REPORT_FILE", "add_arguments", "report_after_run", "run", "write_report"]

REPORT_FILE = "report.html"
#: Detection images embedded by default (each about 50-150 kB).
DEFAULT_IMAGES = 6


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the ``report`` options to ``parser``."""
    # fmt: off
    parser.add_argument("run_dir", metavar="RUN", type=path_text,
        help="a pretraining run, a transfer work dir, or a folder with pretrain/ and transfer/")
    parser.add_argument("--out", type=path_text,
        help=f"the HTML file to write (default RUN/{REPORT_FILE})")
    parser.add_argument("--reference", metavar="JSON",
        help="reference spreads (mean ± std over seeds) to draw beside the run, e.g. "
        "benchmarks/results/demo_reference-corinfomax-20ep.json")
    parser.add_argument("--images", type=int, default=DEFAULT_IMAGES, metavar="N",
        help=f"validation images with detections to embed (default {DEFAULT_IMAGES})")
    # fmt: on


#: What a ``--reference`` file's keys must hold (benchmarks/results/demo_reference-*.json).
_REFERENCE_SHAPE: dict[str, Callable[[Any], bool]] = {
    "probes": lambda v: isinstance(v, dict) and all(isinstance(p, dict) for p in v.values()),
    "transfer": lambda v: isinstance(v, list) and all(isinstance(row, dict) for row in v),
    "epochs": lambda v: isinstance(v, int),
    "seeds": lambda v: isinstance(v, list),
}


def _read_reference(path: str) -> dict[str, Any]:
    hint = "expected a JSON object like benchmarks/results/demo_reference-corinfomax-20ep.json"
    file = Path(path)
    if not file.is_file() or file.stat().st_size > 1 << 20:
        what = "does not exist" if path_kind(file) is None else "not a JSON file of at most 1 MB"
        raise UserError(f"--reference {path}: {what}; {hint}")
    problems: list[str] = []
    if (reference := read_json(file, problems)) is None:  # problems: ["NAME: what is wrong"]
        raise UserError(f"--reference {path}: {problems[0].split(': ', 1)[1]}; {hint}")
    wrong = [k for k, ok in _REFERENCE_SHAPE.items() if k in reference and not ok(reference[k])]
    if wrong or not {"probes", "transfer"} & reference.keys():
        what = f"{', '.join(wrong)} has the wrong type" if wrong else "no 'probes' or 'transfer'"
        raise UserError(f"--reference {path}: {what}; {hint}")
    return reference


def write_report(
    run_dir: str | Path,
    out: str | Path | None = None,
    reference: dict[str, Any] | None = None,
    images: int = DEFAULT_IMAGES,
) -> Path:
    """Writes the report of ``run_dir``; returns the path of the HTML file.

    Raises:
        UserError: ``run_dir`` holds no run, matplotlib is missing, or ``out`` is not ours.
    """
    from lightly_matrix.report import pretrain, transfer
    from lightly_matrix.report.figures import require_matplotlib

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir} is not a folder; pass a run folder or a transfer work dir")
    pretrain_dir = next((p for p in (run_dir, run_dir / "pretrain") if is_pretrain_run(p)), None)
    transfer_dir = next((p for p in (run_dir, run_dir / "transfer") if is_transfer_run(p)), None)
    if pretrain_dir is None and transfer_dir is None:
        raise UserError(
            f"{run_dir} holds no run: expected metrics.json, csv/ or last.ckpt (pretrain), "
            "results.json or mmengine logs (transfer), or pretrain/ and transfer/ sub-folders"
        )
    if images < 0:
        raise UserError(f"--images must be >= 0, got {images}")
    target = Path(out) if out is not None else run_dir / REPORT_FILE
    kind = path_kind(target)  # only a report this tool wrote may be replaced
    if kind not in (None, "a file"):
        raise UserError(f"--out {target} is {kind}, not a regular file; pass an HTML file")
    if kind:
        with open(target, "rb") as f:
            head = f.read(2048)
        if f'content="{GENERATOR}"'.encode() not in head:
            raise UserError(
                f"{target} exists and was not written by lightly-matrix report; it is left as it "
                "is: pass --out with another file name"
            )
    require_matplotlib()

    parts: list[Section] = []
    problems: list[str] = []
    subtitle = []
    if pretrain_dir is not None:
        run = load_pretrain(pretrain_dir)
        parts += [
            pretrain.run_section(run),
            pretrain.probe_section(run, reference),
            pretrain.spectrum_section(run),
            pretrain.curves_section(run),
        ]
        if info := (run.metrics or {}).get("run"):
            subtitle.append(
                f"{info.get('method')} on {info.get('data')}, {info.get('backbone')}, "
                f"{info.get('epochs')} epochs"
            )
        problems += run.problems
    if transfer_dir is not None:
        work = load_transfer(transfer_dir)
        parts += [
            transfer.summary_section(work, reference),
            transfer.curves_section(work),
            transfer.detections_section(work, images),
        ]
        if work.results:
            subtitle.append(f"Mask R-CNN transfer with {work.results.get('config')}")
        problems += work.problems
    if problems:
        parts.append(Section("Files that could not be read", [paragraph(p) for p in problems]))
        print(f"note: unreadable in {run_dir}, left out of the report: {'; '.join(problems)}")
    stamp = time.strftime("%Y-%m-%d %H:%M")
    subtitle.append(f"report written {stamp} by lightly-matrix {__version__}")
    document = page(f"Run report: {run_dir.resolve().name}", "; ".join(subtitle), parts)
    try:  # atomic: a kill mid-write leaves the previous report
        atomic_write_text(target, document)
    except OSError as err:
        raise UserError(f"cannot write {target}: {err.strerror or err}; pass --out") from None
    return target


def report_after_run(run_dir: Path, enabled: bool = True) -> Path | None:
    """Write a run's closing report and print its path, or why not (never failing the run)."""
    if not enabled:
        return None
    try:
        path = write_report(run_dir)
    except Exception as err:  # a figure's failure must not turn a finished run into an error
        retry = f"; retry with: lightly-matrix report {run_dir}"
        why = str(err) if isinstance(err, UserError) else f"{type(err).__name__}: {err}{retry}"
        print(f"report not written: {why}", flush=True)
        return None
    print(f"report: {path}", flush=True)
    return path


def run(args: argparse.Namespace) -> int:
    """Runs ``lightly-matrix report``."""
    start = time.perf_counter()
    reference = None if args.reference is None else _read_reference(args.reference)
    path = write_report(args.run_dir, args.out, reference, args.images)
    print(f"report: {path} ({time.perf_counter() - start:.1f} s)")
    return 0
