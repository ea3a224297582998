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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="results.json of pretrain_digits.py")
    parser.add_argument(
        "--transfer", type=Path, help="results.json of transfer_demo.py (the detection claims)"
    )
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text())
    rows = claim_rows(results["rows"])
    if args.transfer is not None:
        transfer = json.loads(args.transfer.read_text())
        rows += claim_rows(transfer_rows(transfer), TRANSFER_CLAIMS)
    columns = (
        ("claim", "claim"),
        ("paper", "paper"),
        ("measured", "measured here (mean ± std)"),
        ("holds", "holds?"),
    )
    settings = results.get("settings", {})
    label = (
        "each method at the setting its validation search chose"
        if settings.get("best")
        else "the digits preset"
    )
    if settings.get("shape"):
        label = f"loss-isolating twins: each method's best with the '{settings['shape']}' heads"
    print(
        f"Digits, {settings.get('epochs', '?')} epochs, seeds {settings.get('seeds', '?')}, "
        f"{label} ({args.results}).\n"
    )
    print(markdown_table(rows, columns))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
