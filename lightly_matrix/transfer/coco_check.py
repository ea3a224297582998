"""``lightly-matrix check-coco``: a COCO dataset checked before any training, in one line.

mmdet silently skips unusable annotations and finds missing images only mid-run, so a broken
dataset trains on nothing (mAP -1) or fails hours in."""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lightly_matrix.errors import UserError, first_line
from lightly_matrix.transfer.build import inner_dataset, load_config
from lightly_matrix.transfer.checks import check_coco_root
from lightly_matrix.transfer.configs import default_config, resolve_config
from lightly_matrix.user_files import path_text as path
from lightly_matrix.utils.checks import is_number

#: Keys each entry must have: mmdet's CocoDataset and pycocotools read them unchecked.
REQUIRED = {
    "images": ("id", "file_name", "width", "height"),
    "annotations": ("id", "image_id", "category_id", "bbox", "area", "segmentation"),
    "categories": ("id", "name"),
}


def _fail(path: Path, bad: list[Any], what: str, show: Callable[[Any], str], fix: str) -> None:
    if bad:
        count, which = (f"{len(bad)} ", "first") if len(bad) > 1 else ("", "just one")
        raise UserError(f"{path}: {count}{what} ({which}: {show(bad[0])}); {fix}")


def _entry(e: dict[str, Any]) -> str:
    """``id N`` and the file or category name of an entry, for messages."""
    return ", ".join([f"id {e['id']}", *(str(e[k]) for k in ("file_name", "name") if k in e)])


def _finite(values: Any, length: int | None = None) -> bool:
    ok = isinstance(values, list) and len(values) == (length or len(values))
    return ok and all(is_number(v) and abs(v) < 3e38 for v in values)  # mmdet reads float32


def _mask_ok(segmentation: Any, image: dict[str, Any]) -> bool:
    """Polygons of at least 3 points, or a run-length encoding (crowd annotations) of the image's
    [height, width] whose runs (a list, or pycocotools' compressed string) fill it exactly."""
    if isinstance(segmentation, dict):
        counts: Any = segmentation.get("counts")
        size = segmentation.get("size")
        if isinstance(counts, str):  # pycocotools' rleFrString: 5 bits a character
            runs: list[int] = []
            value = shift = 0
            for code in (ord(c) - 48 for c in counts):
                value, shift = value | (code & 0x1F) << shift, shift + 5
                if not code & 0x20:  # a run's last character; 0x10: a negative difference
                    value -= (1 << shift) if code & 0x10 else 0
                    runs.append(value + (runs[-2] if len(runs) > 2 else 0))
                    value = shift = 0
            counts = runs if shift == 0 and all("0" <= c <= "o" for c in counts) else None
        ok = isinstance(counts, list) and all(type(c) is int and c >= 0 for c in counts)
        return ok and size == [image["height"], image["width"]] and sum(counts) == size[0] * size[1]
    polygons = segmentation if isinstance(segmentation, list) else []
    return bool(polygons) and all(_finite(p) and len(p) >= 6 and len(p) % 2 == 0 for p in polygons)


def _cut_short(path: str) -> bool:
    """Whether a JPEG or PNG lacks its end marker (EOI, IEND) in its last KiB: truncated."""
    with open(path, "rb") as f:
        marker = {b"\xff\xd8": b"\xff\xd9", b"\x89P": b"IEND"}.get(f.read(2), b"")
        f.seek(max(f.seek(0, os.SEEK_END) - 1024, 0))
        return marker not in f.read()


def _inside(ann: dict[str, Any], images: dict[Any, dict[str, Any]]) -> float:
    """The shorter side of the part of the box inside its image (<= 0: none)."""
    (x, y, w, h), image = ann["bbox"], images[ann["image_id"]]
    return min(min(x + w, image["width"]) - max(x, 0), min(y + h, image["height"]) - max(y, 0))


def _load(path: Path) -> dict[str, Any]:
    """The annotation file, its structure checked."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        why = first_line(err).replace("decode using utf-8-sig", "re-save it as UTF-8 without one")
        # UTF-16 fails to decode, or decodes with NULs (no byte-order mark) that JSON refuses.
        utf16 = isinstance(err, UnicodeDecodeError) or "\x00" in getattr(err, "doc", "")
        why += "; re-save it as UTF-8" if utf16 else ""
        raise UserError(f"cannot read {path} as COCO JSON annotations: {why}") from err
    if not isinstance(data, dict):
        raise UserError(f"{path} is not a JSON object; expected COCO annotations")
    lacking = [k for k in REQUIRED if not isinstance(data.get(k), list)]
    if lacking:
        raise UserError(f"{path} lacks the list(s) {', '.join(lacking)} of COCO annotations")
    for key, fields in REQUIRED.items():
        for field in fields:
            bad = [e for e in data[key] if not isinstance(e, dict) or field not in e]
            _fail(path, bad, f"{key} lack '{field}'", lambda e: str(e)[:80],
                  f"each of the {key} needs {', '.join(fields)}")  # fmt: skip
    _fail(path, [i for i in data["images"] if not _finite([i["width"], i["height"]])],
          "images lack a numeric width and height", lambda i: i["file_name"],
          "give each image its size in pixels")  # fmt: skip
    rules = {"area": (is_number, "a number"), "iscrowd": ((0, 1).__contains__, "0 or 1")}
    for key, (ok, rule) in rules.items():
        bad = [f"id {a['id']}, {key} {a[key]!r}" for a in data["annotations"]
               if not ok(a.get(key, 0))]  # fmt: skip
        _fail(path, bad, f"annotations have an {key} that is not {rule}", str,
              f"make each {key} {rule}")  # fmt: skip
    ids = [e["id"] for key in REQUIRED for e in data[key]]
    ids += [a[key] for a in data["annotations"] for key in ("image_id", "category_id")]
    _fail(path, [i for i in ids if isinstance(i, list | dict)], "ids are lists or objects",
          str, "ids must be numbers or strings")  # fmt: skip
    return data


def check_split(
    ann_file: str | Path, image_dir: str | Path, classes: Sequence[str], split: str
) -> int:
    """Check one split (named ``split`` in messages) against the config's ``classes``, its
    ``file_name`` entries under ``image_dir``; returns its number of usable annotations (>= 1).

    Raises:
        UserError: One line naming the first bad entry and how many there are.
    """
    from lightly_matrix.data.folder import find_unreadable

    path, image_dir = Path(ann_file), Path(image_dir)
    data = _load(path)
    images, anns = data["images"], data["annotations"]
    if not images:
        raise UserError(f"{path} lists no images; the {split} split would be empty")
    # A file listed twice is scored twice; a category id twice takes one category's boxes.
    pairs = ("images", "id"), ("images", "file_name"), ("annotations", "id"), ("categories", "id")
    for key, field in pairs:
        values = [repr(e[field]) for e in data[key]]  # 1 is not '1': pycocotools compares types
        if field == "file_name":  # './a.jpg' is 'a.jpg'
            values = [os.path.normpath(str(e[field])) for e in data[key]]
        counts = Counter(values)
        _fail(path, [e for e, v in zip(data[key], values, strict=True) if counts[v] > 1],
              f"{key} share their {field} with another", _entry,
              f"give each of the {key} a unique {field}")  # fmt: skip
    outside = [i for i in images if ".." in Path(str(i["file_name"])).parts]
    outside += [i for i in images if Path(str(i["file_name"])).is_absolute()]
    _fail(path, outside, f"file names lead outside {image_dir}", lambda i: i["file_name"],
          "give file names relative to the image folder")  # fmt: skip
    files = [str(image_dir / str(i["file_name"])) for i in images]
    sizes: dict[int, tuple[int, int]] = {}
    unreadable = find_unreadable(files, sizes=sizes)  # headers (in threads), then end markers
    missing = [i for n, i in enumerate(images) if n in unreadable and not os.path.isfile(files[n])]
    _fail(path, missing, f"images are missing under {image_dir}", lambda i: i["file_name"],
          "add them, or remove them from the annotation file")  # fmt: skip
    _fail(path, [i for n, i in enumerate(images) if n in unreadable or _cut_short(files[n])],
          f"images under {image_dir} are truncated or unreadable", lambda i: i["file_name"],
          "re-download or re-encode them, or remove them from the annotation file")  # fmt: skip
    # Transposed is fine: EXIF-rotated images decode so. Else masks are drawn at the wrong size.
    _fail(path, [n for n, i in enumerate(images) if {*sizes[n]} != {i["width"], i["height"]}],
          "images' width and height differ from their files'", lambda n:
          f"{images[n]['file_name']}: {images[n]['width']}x{images[n]['height']} declared,"
          f" {sizes[n][0]}x{sizes[n][1]} in the file", "fix the width and height in the JSON"
          " (images resized after annotating need their annotations rescaled too)")  # fmt: skip
    names = [str(c["name"]) for c in data["categories"]]
    used = {repr(a["category_id"]) for a in anns}
    # mmdet keeps the categories named in the config's classes and drops the others' boxes.
    _fail(path, [n for c, n in zip(data["categories"], names, strict=True)
                 if n not in classes and repr(c["id"]) in used],
          f"categories with annotations are not among the config's {len(classes)} classes", str,
          "remove their annotations, or use a --config for these classes")  # fmt: skip
    _fail(path, [n for i, n in enumerate(names) if n in names[:i]], "category names repeat", str,
          "name each category once")  # fmt: skip
    # mmdet numbers labels in the file's category order (a train/val difference swaps classes).
    names = [n for n in names if n in classes]
    ordered = sorted(names, key=list(classes).index)
    _fail(path, [n for n, m in zip(names, ordered, strict=True) if n != m],
          "categories are listed out of the config's class order", str,
          f"list them as {', '.join(ordered)}")  # fmt: skip
    by_id = {i["id"]: i for i in images}
    _fail(path, [a for a in anns if a["image_id"] not in by_id],
          "annotations refer to an image not listed", lambda a: f"id {a['id']}, image_id"
          f" {a['image_id']!r}", "list the image (ids match by type too: 1 is not '1') or remove"
          " the annotation")  # fmt: skip
    category_ids = {c["id"] for c in data["categories"]}
    _fail(path, [a for a in anns if a["category_id"] not in category_ids],
          "annotations have an unknown category_id", lambda a: f"id {a['id']}, category_id"
          f" {a['category_id']!r}", "use a category listed in the file")  # fmt: skip
    _fail(path, [a for a in anns if not _finite(a["bbox"], 4) or min(a["bbox"][2:]) < 0],
          "boxes are not 4 finite numbers of non-negative size", lambda a: f"id {a['id']},"
          f" bbox {a['bbox']}", "boxes are [x, y, width, height]")  # fmt: skip
    # A box of positive size that does not overlap its image can never be detected.
    _fail(path, [a for a in anns if min(a["bbox"][2:]) > 0 >= _inside(a, by_id)],
          "boxes lie wholly outside their image", lambda a: f"id {a['id']}, bbox {a['bbox']},"
          f" image {by_id[a['image_id']]['width']}x{by_id[a['image_id']]['height']}",
          "fix the boxes, or the image's width and height")  # fmt: skip
    _fail(path, [a for a in anns if not _mask_ok(a["segmentation"], by_id[a["image_id"]])],
          "masks are neither polygons of at least 3 points (finite float32 x, y) nor RLE that fills"
          " the image",
          lambda a: f"id {a['id']}", "each polygon is [x1, y1, x2, y2, x3, y3, ...]; an RLE's"
          " size is [height, width] of its image, its counts sum to height*width")  # fmt: skip
    # What mmdet's CocoDataset trains on: not crowd, area > 0, a box of >= 1 px inside the image.
    usable = [a for a in anns if not (a.get("iscrowd") or a.get("ignore")) and a["area"] > 0]
    usable = [a for a in usable if min(a["bbox"][2:]) >= 1 and _inside(a, by_id) > 0]
    if not usable:
        raise UserError(
            f"{path}: none of its {len(anns)} annotations can be used for the {split} split"
            " (crowd, area <= 0, boxes under 1 px or outside the image); nothing to train or score:"
            " give it annotations not marked crowd, with area > 0 and a box inside the image"
        )
    return len(usable)


def config_classes(cfg: Any, split: str = "train") -> Sequence[str]:
    """The classes the config's ``split`` dataset reads: its metainfo's, else its type's."""
    from mmdet.registry import DATASETS

    dataset = inner_dataset(cfg, split)
    classes = (dataset.get("metainfo") or {}).get("classes")
    return DATASETS.get(dataset["type"]).METAINFO["classes"] if classes is None else classes


def check_config_data(cfg: Any) -> None:
    """Check the train and test datasets a (data-root-resolved) mmdet config reads."""
    for split in ("train", "test"):
        dataset = inner_dataset(cfg, split)
        root = dataset.get("data_root") or ""
        prefix = (dataset.get("data_prefix") or {}).get("img", "")
        check_split(os.path.join(root, dataset["ann_file"]), os.path.join(root, prefix),
                    config_classes(cfg, split), split)  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``check-coco`` options."""
    parser.add_argument("coco_root", metavar="ROOT", type=path, help="COCO in the standard layout")
    parser.add_argument(
        "--config", type=path, help="the config whose classes and files to check (default:"
        " the default transfer config, COCO's 80 classes)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Check ``ROOT`` as the config would read it; print one line."""
    from lightly_matrix.export import require_mmdet

    require_mmdet("lightly-matrix check-coco")
    root = Path(args.coco_root)
    check_coco_root(root)
    cfg = load_config(resolve_config(args.config or default_config(None, demo=False)), root)
    start = time.perf_counter()
    check_config_data(cfg)
    print(f"{root}: fit for {Path(cfg.filename).stem} ({time.perf_counter() - start:.2f} s)")
    return 0
