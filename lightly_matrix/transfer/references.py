"""Published COCO numbers beside ours: ``coco_references.json`` (shipped in the wheel, each
number with its source) and the comparison table printed after a run."""

from __future__ import annotations

import functools
import importlib.resources
import json
from typing import Any

from lightly_matrix.utils.text import markdown_table

REFERENCES_FILE = "coco_references.json"
#: Metric names in the file, and where our results.json keeps each one.
METRICS = {
    f"{name.replace('mAP', 'AP')}_{suffix}": (iou, name)
    for iou, suffix in (("bbox", "bb"), ("segm", "mk"))
    for name in ("mAP", "AP50", "AP75")
}


@functools.cache
def load_references() -> dict[str, Any]:
    """The parsed references file."""
    return json.loads(importlib.resources.files(__package__).joinpath(REFERENCES_FILE).read_text())


def references_for(protocol: str | None) -> list[dict[str, Any]]:
    """The published rows of a protocol (none for ``None`` or a protocol without numbers)."""
    if protocol is None:
        return []
    return [e for e in load_references()["references"] if e["protocol"] == protocol]


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def comparison_table(results: dict[str, Any], full_schedule: bool = True) -> str:
    """Our row and the published ones of the same protocol, as Markdown (``""``: none apply).

    Args:
        results: A run's ``results.json`` content.
        full_schedule: Whether the run trained the config's whole schedule (else a warning).

    Examples:
        >>> ours = {"protocol": "mmselfsup_fpn", "architecture": "resnet50", "method": "matrix_ssl",
        ...         "pretrain_epochs": 100, "bbox": {"mAP": 0.401, "AP50": 0.6, "AP75": 0.44},
        ...         "segm": {"mAP": 0.36, "AP50": 0.57, "AP75": 0.38}}
        >>> print(comparison_table(ours).splitlines()[4])
        | ours: matrix_ssl | 100 | 40.1 | 60.0 | 44.0 | 36.0 | 57.0 | 38.0 | this run |
    """
    protocol = results.get("protocol")
    rows = references_for(protocol)
    if not rows:
        return ""

    def ours(iou_type: str, name: str) -> float | None:
        value = results.get(iou_type, {}).get(name)
        return None if value is None or value < 0 else 100 * value

    method = results.get("method") or ("random init" if not results.get("checkpoint") else "-")
    table = [
        {
            "method": f"ours: {method}",
            "epochs": str(results.get("pretrain_epochs") or "-"),
            **{m: _cell(ours(*METRICS[m])) for m in METRICS},
            "source": "this run",
        }
    ]
    urls: list[str] = []
    for entry in rows:
        source = entry["source"]
        short, kind = source["short"], source["kind"]
        table.append(
            {
                "method": entry["method"],
                "epochs": str(entry["pretrain_epochs"]),
                **{m: _cell(entry[m]) for m in METRICS},
                "source": short if kind in short else f"{short} ({kind})",
            }
        )
        if source["url"] not in urls:
            urls.append(source["url"])
    columns = [("method", "method"), ("epochs", "pretrain epochs"), *((m, m) for m in METRICS)]
    lines = [
        f"Published numbers for protocol {protocol}"
        f" ({load_references()['protocols'][protocol]['detector']}):",
        "",
        markdown_table(table, [*columns, ("source", "source")]),
    ]
    notes = ["Sources:", *(f"- {url}" for url in urls)]
    missing = load_references()["protocols"][protocol].get("missing")
    if missing:
        notes.append(missing)
    if results.get("architecture") != "resnet50":
        notes.append(
            f"The published rows are ResNet-50; this run's backbone is a"
            f" {results.get('architecture')}, so the numbers are not comparable."
        )
    if not full_schedule:
        notes.append(
            "This run used --max-iters (a shortened schedule); compare only full-schedule runs."
        )
    return "\n".join([*lines, "", *notes])
