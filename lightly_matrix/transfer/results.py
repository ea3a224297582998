"""What a transfer run reports: COCO metrics by name, and the Markdown table row."""

from __future__ import annotations

from typing import Any

from lightly_matrix.utils import text

#: mmdet's CocoMetric keys -> our result names.
_METRIC_NAMES = {"mAP": "mAP", "mAP_50": "AP50", "mAP_75": "AP75", "mAP_s": "APs", "mAP_m": "APm",
                 "mAP_l": "APl"}  # fmt: skip
_HEADERS: tuple[str, ...] = ("method", "backbone", "pretrain epochs", "config")
_HEADERS += tuple(f"{n}_{t}" for t in ("bb", "mk") for n in ("AP", "AP50", "AP75"))


def summarise(metrics: dict[str, float]) -> dict[str, dict[str, float]]:
    """CocoMetric's ``coco/bbox_mAP``-style keys as ``{'bbox': {'mAP', 'AP50', ...}, 'segm': ...}``
    (fractions; -1 where COCO has no such objects)."""
    out: dict[str, dict[str, float]] = {}
    for iou_type in ("bbox", "segm"):
        values = {
            name: float(metrics[f"coco/{iou_type}_{key}"])
            for key, name in _METRIC_NAMES.items()
            if f"coco/{iou_type}_{key}" in metrics
        }
        if values:
            out[iou_type] = values
    return out


def markdown_row(results: dict[str, Any]) -> str:
    """One row of the transfer table (AP in percent, as papers report it)."""

    def ap(iou_type: str, name: str) -> str:
        value = results.get(iou_type, {}).get(name)
        return "-" if value is None or value < 0 else f"{100 * value:.1f}"

    cells = [
        results.get("method") or ("random init" if not results.get("checkpoint") else "-"),
        results.get("architecture") or "-",
        str(results.get("pretrain_epochs") or "-"),
        results["config"],
        *(ap(t, n) for t in ("bbox", "segm") for n in ("mAP", "AP50", "AP75")),
    ]
    return text.markdown_row(cells)


def markdown_table(rows: list[str]) -> str:
    """The table header followed by ``rows`` (each a :func:`markdown_row`)."""
    header = text.markdown_table([], [(h, h) for h in _HEADERS])
    return "\n".join([header, *rows])


def config_architecture(cfg: Any) -> str:
    """The backbone a config builds, named like exported architectures (``resnet18``)."""
    backbone = cfg.model.backbone
    if backbone.get("type") == "ResNet":
        return f"resnet{backbone.depth}"
    return str(backbone.get("model_name", backbone.get("type")))
