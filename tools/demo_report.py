"""The end of ``make demo``: what pretraining changed, and the transfer beside measured references.

    python tools/demo_report.py RUN_DIR [REFERENCE_JSON]
    ... | python tools/demo_report.py --progress     # one short line per logged mmengine step

Prints (1) the frozen-backbone probes on the digits test split before pretraining (the random
initialisation, evaluated by the run itself at epoch 0) and after it, with the change; (2) the Mask
R-CNN result on the generated shapes next to the reference rows measured over several seeds by
``benchmarks/transfer_demo.py`` (random init and the demo's own pretraining), if the reference
file exists (``benchmarks/demo_reference.py`` writes it, one per demo method and length) and was
measured for the run's method and number of epochs.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from lightly_matrix.utils.text import markdown_row, markdown_table

PROBES = (
    ("knn_top1", "kNN top-1"),
    ("linear_top1", "linear top-1"),
    ("few_label_top1", "10 labels/class top-1"),
)


def probe_table(metrics: dict, reference: dict | None) -> list[str]:
    history = metrics["history"]
    before, after = history[0], metrics["final"]
    if before["epoch"] != 0 or after["epoch"] == 0:
        return ["(no before/after evaluation in metrics.json)"]
    probes = (reference or {}).get("probes", {})
    seeds = len((reference or {}).get("seeds", []))
    headers = ["probe", "random init (epoch 0)", "pretrained", "change"]
    headers += [f"reference change ({seeds} seeds)"] if probes else []
    method = metrics.get("run", {}).get("method", "pretraining")
    if reference is not None and reference.get("method", "matrix_ssl") == method:
        method = reference.get("label", method)
    lines = [
        f"Frozen ResNet-18 on the digits test split (%), before and after {after['epoch']} "
        f"epoch{'s' * (after['epoch'] != 1)} of {method}:",
        *markdown_table([], [(h, h) for h in headers]).splitlines(),
    ]
    for key, name in PROBES:
        change = after[key] - before[key]
        cells = [name, f"{before[key]:.2f}", f"{after[key]:.2f}", f"{change:+.2f}"]
        lines.append(markdown_row(cells + ([probes[key]["change"]] if key in probes else [])))
    return lines


def transfer_table(results: dict, reference: dict | None) -> list[str]:
    def ap(res: dict, kind: str) -> str:
        return f"{100 * res[kind]['mAP']:.1f}"

    lines = [
        "Mask R-CNN R18-FPN on the generated shapes (val split, AP %):",
    ]
    ours = {"init": "this run's export", "AP_bb": ap(results, "bbox"), "AP_mk": ap(results, "segm")}
    rows = [ours]
    rows += [
        {**row, "init": f"{row['row']} (reference, {row['seeds']} seeds)"}
        for row in (reference or {}).get("transfer", [])
    ]
    columns = [("init", "backbone init"), ("AP_bb", "AP_bb"), ("AP_mk", "AP_mk")]
    return [*lines, *markdown_table(rows, columns, cell=str).splitlines()]  # cells as given


# mmengine's log lines: "Epoch(train) [1][ 10/50] ... eta: 0:01:02 ... loss: 2.3456 ...", and at
# the end of an evaluation "Epoch(val) [3][20/20] coco/bbox_mAP: 0.1590 ... coco/segm_mAP: 0.2340".
STEP = re.compile(r"(?:Epoch|Iter)\((train|val|test)\)\s*(?:\[(\d+)\])?\s*\[\s*(\d+)/(\d+)\]")
FIELD = re.compile(r"(eta|loss|coco/bbox_mAP|coco/segm_mAP): (\S+)")


def progress_lines(lines: Iterable[str]) -> Iterable[str]:
    """The demo's console view of the transfer: a line per logged training step and evaluation."""
    for line in lines:
        step = STEP.search(line)
        if step is None:
            continue
        phase, epoch, done, total = step.groups()
        fields = dict(FIELD.findall(line))
        if phase == "train" and "loss" in fields:
            where = f"epoch {epoch}, " if epoch else ""
            eta = fields.get("eta", "-")
            yield f"  {where}iter {done}/{total}  loss {fields['loss']}  eta {eta}"
        elif "coco/bbox_mAP" in fields:
            box, mask = (
                100 * float(fields.get(k, "nan")) for k in ("coco/bbox_mAP", "coco/segm_mAP")
            )
            yield f"  evaluation ({phase}): box AP {box:.1f}, mask AP {mask:.1f}"


def main(argv: list[str]) -> int:
    if argv[:1] == ["--progress"]:
        for text in progress_lines(sys.stdin):
            print(text, flush=True)
        return 0
    if not 1 <= len(argv) <= 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[0])
    reference_path = Path(argv[1]) if len(argv) > 1 else None
    reference = None
    if reference_path is not None and reference_path.is_file():
        reference = json.loads(reference_path.read_text())
    elif reference_path is not None:
        print(f"(no reference measured for this run: {reference_path} does not exist)")
    metrics = json.loads((out / "pretrain" / "metrics.json").read_text())
    results = json.loads((out / "transfer" / "results.json").read_text())
    ran = metrics.get("run", {}).get("method")
    meant = (reference or {}).get("method", "matrix_ssl")  # files before 'method' were Matrix-SSL's
    if reference is not None and ran is not None and meant != ran:
        print(f"({reference_path} is the reference of {meant}, not {ran}: not shown)")
        reference = None
    # A reference of another length would compare changes that are not comparable.
    epochs, measured = metrics["final"].get("epoch"), (reference or {}).get("epochs")
    if reference is not None and measured is not None and measured != epochs:
        print(f"({reference_path} was measured at {measured} epochs, not {epochs}: not shown)")
        reference = None
    print("\n".join(probe_table(metrics, reference)))
    print()
    print("\n".join(transfer_table(results, reference)))
    if reference is not None and reference.get("note"):
        print("\n" + reference["note"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
