"""What the report shows of a transfer run: COCO AP by size and category, losses, detections."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from lightly_matrix.report.data import TransferRun
from lightly_matrix.report.figures import draw_bars, draw_curves
from lightly_matrix.report.html import Section, esc, image, settings, table
from lightly_matrix.utils.text import percent

#: results.json's summary keys, as COCO names them.
AP_KEYS = (("mAP", "AP"), ("AP50", "AP50"), ("AP75", "AP75"), ("APs", "AP small"),
           ("APm", "AP medium"), ("APl", "AP large"))  # fmt: skip
IOU_TYPES = (("bbox", "box"), ("segm", "mask"))
#: mmdet's Mask R-CNN losses, in the order of the model.
LOSSES = ("loss", "loss_rpn_cls", "loss_rpn_bbox", "loss_cls", "loss_bbox", "loss_mask")
#: Longest side of an embedded detection image (px).
MAX_IMAGE_SIDE = 900
#: Larger images are not decoded (a 40000 x 40000 PNG would take gigabytes).
MAX_IMAGE_PIXELS = 50_000_000
NO_RESULTS = "no results.json: the run did not reach its test"


def summary_section(run: TransferRun, reference: dict[str, Any] | None) -> Section:
    """The run's settings and its COCO AP, with reference rows if given."""
    section = Section("Mask R-CNN transfer")
    section.text(f"Work dir: {run.path.resolve()}", "meta")
    results = run.results
    if results is None:
        return section.figure("COCO AP", None, "AP by size and category", NO_RESULTS)
    keys = ("config", "method", "architecture", "pretrain_epochs", "checkpoint", "schedule",
            "total_batch_size", "base_lr", "train_time_s", "test_time_s")  # fmt: skip
    section.add(settings(results, keys))
    aps = {n: [percent(results.get(t, {}).get(key)) for key, _ in AP_KEYS] for t, n in IOU_TYPES}
    rows = [[f"{name} AP (%)", *values] for name, values in aps.items()]
    section.add("<h3>COCO AP by IoU and object size</h3>")
    section.add(table(["this run"] + [name for _, name in AP_KEYS], rows))
    fields = ("row", "seeds", "AP_bb", "AP_mk")
    ref_rows = [[row.get(f) for f in fields] for row in (reference or {}).get("transfer", [])]
    if ref_rows:
        section.text("Reference rows (mean ± std over seeds, AP %):")
        section.add(table(("backbone init", "seeds", "box AP", "mask AP"), ref_rows))
    bars = {name: aps[name] for t, name in IOU_TYPES if t in results}
    if bars:
        png = draw_bars("COCO AP by IoU and size", [n for _, n in AP_KEYS], bars, "AP (%)")
        section.add(image(png, "COCO AP by IoU and object size"))
    # Per-category AP (fractions) of ClasswiseCocoMetric (mmdet's CocoMetric(classwise=True)).
    classes: dict[str, dict[str, float]] = {t: {} for t, _ in IOU_TYPES}
    for key, value in (results.get("metrics") or {}).items():
        if (match := re.fullmatch(r"coco/(\w+?)_(.+)_precision", key)) and match[1] in classes:
            classes[match[1]][match[2]] = value
    names = sorted({c for values in classes.values() for c in values})
    if not names:
        why = "results.json has no per-category AP: the run predates classwise evaluation"
        return section.figure("AP per category", None, "AP per category", why)
    section.add("<h3>AP per category</h3>")
    rows = [[c] + [percent(classes[t].get(c)) for t, _ in IOU_TYPES] for c in names]
    section.add(table(["category", "box AP (%)", "mask AP (%)"], rows))
    bars = {name: [percent(classes[t].get(c)) for c in names] for t, name in IOU_TYPES}
    section.add(image(draw_bars("AP per category", names, bars, "AP (%)"), "AP per category"))
    return section


def curves_section(run: TransferRun) -> Section:
    """mmdet's training losses, lr, RCNN accuracy and validation AP from ``scalars.json``."""
    section = Section("Mask R-CNN training curves")
    if not run.curves:
        why = "no TIMESTAMP/vis_data/scalars.json in the work dir"
        return section.figure("Losses", None, "the mmdet loss curves", why)
    validation = [(f"coco/{t}_mAP", f"coco/{t}_mAP", "-o") for t, _ in IOU_TYPES]
    specs = [
        ("Mask R-CNN losses", "loss", [(k, k, "-") for k in LOSSES], False, 1.0),
        ("Learning rate", "learning rate", [("lr", "", "-")], False, 1.0),
        ("RoI head classification accuracy (training)", "accuracy (%)", [("acc", "", "-")],
         False, 1.0),
        ("Validation AP while training", "AP (%)", validation, False, 100.0),
    ]  # fmt: skip
    png, _ = draw_curves(run.curves, specs, steps="iteration")
    section.text("From mmengine's log of the run (TIMESTAMP/vis_data/scalars.json).")
    section.figure("Losses and schedule", png, "the mmdet loss curves", "no losses were logged")
    return section


def _jpeg(path: Path) -> bytes:
    from PIL import Image

    with Image.open(path) as img:
        if img.width * img.height > MAX_IMAGE_PIXELS:
            raise OSError(f"{img.width} x {img.height} pixels, too large to embed")
        rgb = img.convert("RGB")
    rgb.thumbnail((MAX_IMAGE_SIDE, MAX_IMAGE_SIDE))
    buffer = io.BytesIO()
    rgb.save(buffer, format="JPEG", quality=88)
    return buffer.getvalue()


def detections_section(run: TransferRun, max_images: int) -> Section:
    """A few validation images with ground truth and predictions drawn by mmdet's visualizer."""
    section = Section("Detections on validation images")
    if not run.images:
        why = "no TIMESTAMP/vis_test/ images (older run, or default_hooks.visualization.draw=False)"
        return section.figure("Images", None, "validation images with predictions", why)
    section.text(
        "The first validation images, drawn during the test by mmdet's DetLocalVisualizer: "
        "ground truth on the left, predictions scoring at least the hook's score_thr (0.3 "
        "unless changed) on the right; a right half without boxes means no such prediction."
    )
    figures = []
    for path in run.images[:max_images]:
        try:
            data = _jpeg(path)
        except Exception as err:  # an unreadable or oversized image is noted, not fatal
            run.problems.append(f"{path.name}: {err}")
            continue
        figures.append(
            f"<figure>{image(data, path.name, 'image/jpeg')}"
            f"<figcaption>{esc(path.name)}</figcaption></figure>"
        )
    section.add('<div class="gallery">' + "".join(figures) + "</div>")
    return section
