"""The papers' comparisons, checked on a seeded digits table (``pretrain_digits.py``'s results).

Each claim is an ordering of methods on one probe (the papers compare linear probes). A claim
``A > B`` holds when A's mean is higher and the two seed sets are separated (the means differ by
more than the sum of both standard deviations, :func:`digits_runs.separated`); it is reversed when B
is higher and separated; otherwise the seeds cannot tell. ``A >= B`` holds unless it is reversed.
The "paper" column is the claim as its paper states it (no paper number is written into a results
file); "measured here" comes from the results file only.

With ``--transfer`` (the ``results.json`` of ``transfer_demo.py`` on the same checkpoints) the
papers' detection claims are checked on the paired Mask R-CNN box AP too.

Usage::

    python benchmarks/claims.py runs/p30/results.json > benchmarks/results/claims-30ep.md
    python benchmarks/claims.py benchmarks/results/pretrain_digits-30ep/results.json \
        --transfer benchmarks/results/transfer_demo-30ep/results.json
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from digits_runs import fmt, mean_std, separated

from lightly_matrix.utils.text import markdown_table


@dataclass(frozen=True)
class Claim:
    """``better`` beats (or, with ``strict=False``, matches or beats) ``worse`` on ``probe``."""

    better: str
    worse: str
    probe: str
    paper: str
    strict: bool = True


CLAIMS = (
    Claim(
        "matrix_ssl",
        "mec",
        "linear_top1",
        "Matrix-SSL (ICML 2024): the matrix-alignment term on top of MEC's uniformity helps; "
        "ImageNet linear probe above MEC",
    ),
    Claim(
        "matrix_ssl",
        "byol",
        "linear_top1",
        "Matrix-SSL (ICML 2024): above BYOL on the ImageNet linear probe and COCO transfer",
    ),
    Claim(
        "mmae",
        "umae",
        "linear_top1",
        "M-MAE (arXiv 2309.17281): TCR subsumes U-MAE's square term; above U-MAE",
    ),
    Claim(
        "umae",
        "mae",
        "linear_top1",
        "U-MAE (NeurIPS 2022) / M-MAE: the uniformity term helps MAE's linear probe",
    ),
    Claim(
        "mmae",
        "mae",
        "linear_top1",
        "M-MAE: +3.9 points linear probe over MAE (ViT-B, ImageNet-1k, 200 epochs)",
    ),
    Claim(
        "corinfomax",
        "barlowtwins",
        "linear_top1",
        "CorInfoMax (NeurIPS 2022): on par with or above Barlow Twins",
        strict=False,
    ),
    Claim(
        "corinfomax",
        "vicreg",
        "linear_top1",
        "CorInfoMax (NeurIPS 2022): on par with or above VICReg",
        strict=False,
    ),
)
#: The detection claims, checked on the paired shapes transfer (box AP of Mask R-CNN R18-FPN).
TRANSFER_CLAIMS = (
    Claim(
        "matrix_ssl",
        "byol",
        "AP_bb",
        "Matrix-SSL (ICML 2024): above BYOL on COCO Mask R-CNN transfer",
    ),
    Claim(
        "matrix_ssl",
        "mec",
        "AP_bb",
        "Matrix-SSL (ICML 2024): the alignment term helps (stated for the linear probe; "
        "checked on the transfer too)",
    ),
    Claim(
        "corinfomax",
        "barlowtwins",
        "AP_bb",
        "CorInfoMax (NeurIPS 2022): COCO transfer on par with or above Barlow Twins",
        strict=False,
    ),
    Claim(
        "corinfomax",
        "vicreg",
        "AP_bb",
        "CorInfoMax (NeurIPS 2022): COCO transfer on par with or above VICReg",
        strict=False,
    ),
)
PROBE_NAMES = {
    "knn_top1": "kNN",
    "linear_top1": "linear",
    "few_label_top1": "10 labels/class",
    "AP_bb": "shapes box AP",
}


def verdict(claim: Claim, better: list[float], worse: list[float]) -> str:
    """``holds``, ``reversed`` or ``not separated`` (or ``missing`` without runs)."""
    if not better or not worse:
        return "missing"
    apart = separated(better, worse)
    higher = mean_std(better)[0] > mean_std(worse)[0]
    if apart and not higher:
        return "reversed"
    if apart or not claim.strict:
        return "holds"
    return "not separated"


def claim_rows(rows: list[dict[str, Any]], claims: tuple[Claim, ...] = CLAIMS) -> list[dict]:
    """One table row per claim, from the per-seed rows of a ``pretrain_digits`` results file."""
    out = []
    for claim in claims:
        a = [r[claim.probe] for r in rows if r["method"] == claim.better]
        b = [r[claim.probe] for r in rows if r["method"] == claim.worse]
        sign = ">" if claim.strict else ">="
        measured = f"{fmt(a)} vs {fmt(b)}" if a and b else "not run"
        out.append(
            {
                "claim": f"{claim.better} {sign} {claim.worse} ({PROBE_NAMES[claim.probe]})",
                "paper": claim.paper,
                "measured": measured,
                "holds": verdict(claim, a, b),
            }
        )
    return out


def transfer_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-seed rows ``{"method", "AP_bb"}`` (percent) from a ``transfer_demo`` results file."""
    return [
        {"method": name, "AP_bb": 100.0 * run["bbox"]["mAP"]}
        for name, runs in results["raw"].items()
        for run in runs
    ]


def merged_rows(files: list[Path], methods: list[str] | None) -> list[dict[str, Any]]:
    """The per-seed rows of several ``pretrain_digits`` results files, a method taken from the
    first file that has it (so a table can reuse a run of another table, e.g. Matrix-SSL's best
    setting, which is also its twin); ``methods`` keeps only those (and their random init)."""
    rows: list[dict[str, Any]] = []
    taken: set[str] = set()
    for path in files:
        file_rows = json.loads(path.read_text())["rows"]
        new = {r["method"] for r in file_rows} - taken - {"random init", "raw pixels"}
        if methods is not None:
            new &= set(methods)
        rows += [r for r in file_rows if r["method"] in new]
        inits = [r for r in file_rows if r["method"] == "random init"]
        backbones = {r.get("backbone") for r in file_rows if r["method"] in new}
        have = {(r.get("backbone"), r.get("seed")) for r in rows if r["method"] == "random init"}
        rows += [
            r
            for r in inits
            if r.get("backbone") in backbones and (r.get("backbone"), r.get("seed")) not in have
        ]
        taken |= new
    return rows


def init_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each method against its own random initialisation (same backbone and seeds), per probe."""
    out = []
    for method in dict.fromkeys(r["method"] for r in rows):
        if method in ("random init", "raw pixels"):
            continue
        runs = [r for r in rows if r["method"] == method]
        starts = {(r.get("backbone"), r.get("seed")) for r in runs}
        inits = [r for r in rows if r["method"] == "random init"]
        inits = [r for r in inits if (r.get("backbone"), r.get("seed")) in starts]
        for probe in ("linear_top1", "few_label_top1"):
            a = [r[probe] for r in runs if probe in r]
            b = [r[probe] for r in inits if probe in r]
            if not a or not b:
                continue
            apart, higher = separated(a, b), mean_std(a)[0] > mean_std(b)[0]
            out.append(
                {
                    "claim": f"{method} > its random init ({PROBE_NAMES[probe]})",
                    "measured": f"{fmt(a)} vs {fmt(b)}",
                    "holds": "holds"
                    if apart and higher
                    else "BELOW"
                    if apart
                    else ("not separated (above)" if higher else "not separated (below)"),
                }
            )
    return out


def file_label(path: Path) -> str:
    """What a results file's runs are: the preset, each method's chosen setting, or the twins."""
    settings = json.loads(path.read_text()).get("settings", {})
    label = (
        "each method at the setting its validation search chose"
        if settings.get("best")
        else "the digits preset"
    )
    if settings.get("shape"):
        label = f"loss-isolating twins: each method's best with the '{settings['shape']}' heads"
    return (
        f"{settings.get('epochs', '?')} epochs, seeds {settings.get('seeds', '?')}, {label} "
        f"({path})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "results",
        type=Path,
        nargs="+",
        help="results.json of pretrain_digits.py; with several, a method comes from the first "
        "file that has it",
    )
    parser.add_argument("--methods", nargs="+", help="only these methods (default: all found)")
    parser.add_argument(
        "--transfer",
        type=Path,
        nargs="+",
        default=[],
        help="results.json of transfer_demo.py (the detection claims); several merge as above",
    )
    args = parser.parse_args(argv)
    rows = merged_rows(args.results, args.methods)
    table = claim_rows(rows)
    if args.transfer:
        transfer: dict[str, list[Any]] = {}
        for path in args.transfer:
            for name, runs in json.loads(path.read_text())["raw"].items():
                if args.methods is None or name in args.methods or name == "random init":
                    transfer.setdefault(name, runs)
        table += claim_rows(transfer_rows({"raw": transfer}), TRANSFER_CLAIMS)
    ran = {r["method"] for r in rows} | set(args.methods or ())
    table = [r for r in table if r["holds"] != "missing" or r["claim"].split()[0] in ran]
    columns = (
        ("claim", "claim"),
        ("paper", "paper"),
        ("measured", "measured here (mean ± std)"),
        ("holds", "holds?"),
    )
    print("Digits: " + "; ".join(file_label(p) for p in args.results) + ".\n")
    print(markdown_table(table, columns))
    init = init_rows(rows)
    if init:
        print(
            "\nAgainst the random initialisation (each run's own evaluation before training; "
            "`BELOW`: separated, and lower).\n"
        )
        print(markdown_table(init, (columns[0], columns[2], columns[3])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
