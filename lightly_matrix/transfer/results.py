"""What a transfer run reports: COCO metrics by name, its Markdown row, and the published numbers
beside it (``coco_references.json``, shipped in the wheel, each number with its source)."""

from __future__ import annotations

import functools
import importlib.resources
import json
from collections.abc import Sequence
from typing import Any

from lightly_matrix.utils import text
from lightly_matrix.utils.text import percent

REFERENCES_FILE = "coco_references.json"
#: mmdet's CocoMetric keys -> our result names.
_METRIC_NAMES = {"mAP": "mAP", "mAP_50": "AP50", "mAP_75": "AP75", "mAP_s": "APs", "mAP_m": "APm",
                 "mAP_l": "APl"}  # fmt: skip
#: The tables' AP columns (the references file's names) -> where results.json keeps each one.
METRICS = {
    f"{name.replace('mAP', 'AP')}_{suffix}": (iou, name)
    for iou, suffix in (("bbox", "bb"), ("segm", "mk"))
    for name in ("mAP", "AP50", "AP75")
}
_HEADERS = ("method", "backbone", "pretrain epochs", "config", *METRICS)


def summarise(metrics: dict[str, float]) -> dict[str, dict[str, float]]:
    """CocoMetric's ``coco/bbox_mAP``-style keys as ``{'bbox': {'mAP', 'AP50', ...}, 'segm': ...}``
    (fractions; -1 where COCO has no such objects)."""
    out: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        iou_type, _, name = key.removeprefix("coco/").partition("_")
        if key.startswith("coco/") and iou_type in ("bbox", "segm") and name in _METRIC_NAMES:
            out.setdefault(iou_type, {})[_METRIC_NAMES[name]] = float(value)
    return out


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _ap_cells(results: dict[str, Any]) -> list[str]:
    return [_cell(percent(results.get(t, {}).get(name))) for t, name in METRICS.values()]


def _method(results: dict[str, Any]) -> str:
    return results.get("method") or ("random init" if not results.get("checkpoint") else "-")


def markdown_row(results: dict[str, Any]) -> str:
    """One row of the transfer table (AP in percent, as papers report it)."""
    epochs = str(results.get("pretrain_epochs") or "-")
    cells = [_method(results), results.get("architecture") or "-", epochs, results["config"]]
    return text.markdown_row([*cells, *_ap_cells(results)])


def markdown_table(rows: list[str], headers: Sequence[str] = _HEADERS) -> str:
    """The ``headers`` row followed by ``rows`` (each a :func:`markdown_row`)."""
    return "\n".join([text.markdown_table([], [(h, h) for h in headers]), *rows])


def config_architecture(cfg: Any) -> str:
    """The backbone a config builds, named like exported architectures (``resnet18``)."""
    backbone = cfg.model.backbone
    if backbone.get("type") == "ResNet":
        return f"resnet{backbone.depth}"
    return str(backbone.get("model_name", backbone.get("type")))


@functools.cache
def load_references() -> dict[str, Any]:
    """The parsed references file."""
    return json.loads(importlib.resources.files(__package__).joinpath(REFERENCES_FILE).read_text())


def references_for(protocol: str | None) -> list[dict[str, Any]]:
    """The published rows of a protocol (none for ``None`` or a protocol without numbers)."""
    return [e for e in load_references()["references"] if e["protocol"] == protocol]


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
    epochs = str(results.get("pretrain_epochs") or "-")
    table = [[f"ours: {_method(results)}", epochs, *_ap_cells(results), "this run"]]
    for e in rows:
        short, kind = e["source"]["short"], e["source"]["kind"]
        source = short if kind in short else f"{short} ({kind})"
        aps = [_cell(e[m]) for m in METRICS]
        table.append([e["method"], str(e["pretrain_epochs"]), *aps, source])
    headers = ("method", "pretrain epochs", *METRICS, "source")
    markdown = markdown_table([text.markdown_row(row) for row in table], headers)
    described = load_references()["protocols"][protocol]
    lines = [f"Published numbers for protocol {protocol} ({described['detector']}):", "", markdown]
    notes = ["Sources:", *(f"- {url}" for url in dict.fromkeys(e["source"]["url"] for e in rows))]
    if described.get("missing"):
        notes.append(described["missing"])
    if results.get("architecture") != "resnet50":
        notes.append(
            f"The published rows are ResNet-50; this run's backbone is a"
            f" {results.get('architecture')}, so the numbers are not comparable."
        )
    if not full_schedule:
        notes.append("This run used --max-iters; the published rows are full-schedule runs.")
    return "\n".join([*lines, "", *notes])
