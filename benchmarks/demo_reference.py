"""Collects the reference numbers that ``make demo`` prints beside its own run.

Reads the ``results.json`` of the seeded digits benchmark (``benchmarks/pretrain_digits.py``) and
of the seeded transfer benchmark (``benchmarks/transfer_demo.py``) and writes the rows the demo
compares itself with: the Matrix-SSL probes before/after at the demo length, and random-init vs
Matrix-SSL transfer.

    python benchmarks/demo_reference.py benchmarks/results/pretrain_digits-30ep \\
        benchmarks/results/transfer_demo-30ep benchmarks/results/demo_reference.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from digits_runs import PROBES, fmt, separated


def main(argv: list[str]) -> int:
    digits_dir, transfer_dir, out = (Path(a) for a in argv)
    digits = json.loads((digits_dir / "results.json").read_text())
    transfer = json.loads((transfer_dir / "results.json").read_text())
    runs = [row for row in digits["rows"] if row["method"] == "matrix_ssl"]
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
    note = f"Measured over {len(runs)} seeds, {epochs} epochs of Matrix-SSL " + (
        "do not lift these digits probes above the random initialisation by more than both "
        f"seed spreads: {', '.join(short)}; README 'Pretraining on digits' has the numbers."
        if short
        else "lift every digits probe above the random initialisation by more than both seed "
        "spreads."
    )
    reference = {
        "source": "benchmarks/pretrain_digits.py and benchmarks/transfer_demo.py (mean ± std)",
        "epochs": digits["settings"]["epochs"],
        "seeds": digits["settings"]["seeds"],
        "probes": probes,
        "note": note,
        "transfer": [
            {k: row.get(k, "") for k in ("row", "seeds", "AP_bb", "AP_mk")}
            for row in transfer["rows"]
        ],
    }
    out.write_text(json.dumps(reference, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps(reference, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
