"""Collects the reference numbers that ``make demo`` prints beside its own run.

From the ``results.json`` of ``benchmarks/pretrain_digits.py`` and ``benchmarks/transfer_demo.py``
(seeded), writes what the demo compares itself with: the method's probes before/after at the demo
length, and random init vs that method's transfer. One file per method and length,
``demo_reference-{method}-{epochs}ep.json``: the demo picks the one of its own length.

    python benchmarks/demo_reference.py benchmarks/results/pretrain_digits-30ep \\
        benchmarks/results/transfer_demo-30ep \\
        benchmarks/results/demo_reference-corinfomax-30ep.json --method corinfomax
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from digits_runs import PROBES, fmt, separated

#: The names the demo prints.
LABELS = {"matrix_ssl": "Matrix-SSL", "corinfomax": "CorInfoMax"}


def transfer_lifted(raw: dict[str, list[dict[str, Any]]], method: str) -> bool | None:
    """Whether ``method``'s box and mask AP beat random init past both spreads (or ``None``)."""
    if not raw.get(method) or not raw.get("random init"):
        return None

    def aps(name: str, kind: str) -> list[float]:
        return [100.0 * run[kind]["mAP"] for run in raw[name]]

    return all(
        separated(aps(method, kind), aps("random init", kind))
        and sum(aps(method, kind)) > sum(aps("random init", kind))  # equal seed counts
        for kind in ("bbox", "segm")
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("digits_dir", type=Path, help="folder of pretrain_digits' results.json")
    parser.add_argument("transfer_dir", type=Path, help="folder of transfer_demo's results.json")
    parser.add_argument("out", type=Path, help="reference file to write")
    parser.add_argument("--method", default="matrix_ssl", choices=sorted(LABELS))
    args = parser.parse_args(argv)
    digits = json.loads((args.digits_dir / "results.json").read_text())
    transfer = json.loads((args.transfer_dir / "results.json").read_text())
    runs = [row for row in digits["rows"] if row["method"] == args.method]
    if not runs:
        raise SystemExit(f"{args.digits_dir}/results.json has no {args.method} runs")
    label = LABELS[args.method]
    probes = {
        key: {
            "before": fmt([row["before"][key] for row in runs]),
            "after": fmt([row[key] for row in runs]),
            "change": fmt([row[key] - row["before"][key] for row in runs]),
        }
        for key in PROBES
    }
    # The bar: a gain beyond both 3-seed spreads (digits_runs.separated), per probe.
    short = [
        key
        for key in PROBES
        if not (
            separated([row[key] for row in runs], [row["before"][key] for row in runs])
            and sum(row[key] - row["before"][key] for row in runs) > 0
        )
    ]
    epochs = digits["settings"]["epochs"]
    note = f"Measured over {len(runs)} seeds, {epochs} epochs of {label} " + (
        "do not lift these digits probes above the random initialisation by more than both "
        f"seed spreads: {', '.join(short)}; README 'Pretraining on digits' has the numbers."
        if short
        else "lift every digits probe above the random initialisation by more than both seed "
        "spreads."
    )
    lifted = transfer_lifted(transfer.get("raw", {}), args.method)
    if lifted is not None:
        note += (
            " The transfer's box and mask AP are above random init by more than both spreads."
            if lifted
            else " The transfer's box and mask AP are not both beyond the spreads of random init."
        )
    reference = {
        "source": "benchmarks/pretrain_digits.py and benchmarks/transfer_demo.py (mean ± std)",
        "method": args.method,
        "label": label,
        "epochs": epochs,
        "seeds": digits["settings"]["seeds"],
        "probes": probes,
        "note": note,
        "transfer": [
            {k: row.get(k, "") for k in ("row", "seeds", "AP_bb", "AP_mk")}
            for row in transfer["rows"]
            if row["row"] in ("random init", args.method)
        ],
    }
    args.out.write_text(json.dumps(reference, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps(reference, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
