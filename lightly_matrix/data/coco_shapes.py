"""A generated COCO-format instance-segmentation data set of coloured shapes: non-overlapping
rectangles, ellipses and triangles (the category; colour is random) on a noisy background, with
exact polygon masks, in MS-COCO's layout (mmdet's real COCO code path)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from lightly_matrix.utils.checks import check_positive_int

CATEGORIES: tuple[str, ...] = ("rectangle", "ellipse", "triangle")
SPLITS: tuple[str, ...] = ("train", "val")
# Written first: marks a directory this module may write into (a non-empty one may be a real COCO).
_OWNER_MARKER = ".lightly_matrix_coco_shapes"
# Written last: its presence marks a complete data set (an interrupted run is regenerated).
_DONE_MARKER = ".complete"
_ANNOTATION_KEYS = ("id", "image_id", "category_id", "segmentation", "area", "bbox", "iscrowd")


def _polygon(kind: str, cx: float, cy: float, r: float, rng: np.random.Generator) -> np.ndarray:
    """Vertices (N, 2) of one shape centred at (cx, cy) with circumradius about r."""
    if kind == "rectangle":
        aspect = rng.uniform(0.5, 1.0)
        w, h = (r, r * aspect) if rng.random() < 0.5 else (r * aspect, r)
        return np.array([[cx - w, cy - h], [cx + w, cy - h], [cx + w, cy + h], [cx - w, cy + h]])
    if kind == "ellipse":
        ry = r * rng.uniform(0.5, 1.0)
        t = np.linspace(0.0, 2.0 * math.pi, 32, endpoint=False)
        return np.stack([cx + r * np.cos(t), cy + ry * np.sin(t)], axis=1)
    # Triangle: well-spread angles so it never degenerates into a sliver.
    start = rng.uniform(0.0, 2.0 * math.pi) + np.arange(3) * (2.0 * math.pi / 3.0)
    angles = start + rng.uniform(-0.3, 0.3, 3)
    return np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], axis=1)


def _make_image(
    size: int, rng: np.random.Generator, max_shapes: int
) -> tuple[Image.Image, list[tuple[int, np.ndarray]]]:
    """One image and its instances as (category index, polygon)."""
    base = rng.integers(0, 256, 3)
    noise = rng.normal(0.0, 12.0, (size, size, 3))
    pixels = np.clip(base[None, None, :] * 0.5 + 64 + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    placed: list[tuple[float, float, float]] = []
    instances: list[tuple[int, np.ndarray]] = []
    for _ in range(int(rng.integers(1, max_shapes + 1))):
        for _attempt in range(20):
            r = rng.uniform(0.08, 0.22) * size
            cx, cy = rng.uniform(r, size - r, 2)
            # Disjoint circumcircles: masks stay exact because nothing is occluded.
            if all(math.hypot(cx - px, cy - py) > r + pr + 2 for px, py, pr in placed):
                break
        else:
            continue
        placed.append((cx, cy, r))
        label = int(rng.integers(len(CATEGORIES)))
        poly = _polygon(CATEGORIES[label], cx, cy, r, rng)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.polygon([tuple(p) for p in poly.tolist()], fill=colour)
        instances.append((label, poly))
    return image, instances


def check_shapes_root(root: str | Path, **params: int) -> bool:
    """Whether ``root`` holds a complete data set of :func:`make_coco_shapes` with ``params``
    (``False``: absent, empty or incomplete, to generate); writes nothing.

    Raises:
        ValueError: ``root`` is a file, a non-empty directory this module did not create (such
            as a real COCO), or holds coloured shapes made with other arguments.
    """
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ValueError(f"{root} is a file, not a directory for the coloured shapes")
    owner = _read_json(root / _OWNER_MARKER)
    if root.is_dir() and not isinstance(owner, dict) and any(root.iterdir()):
        raise ValueError(
            f"{root} is not empty and was not created by make_coco_shapes; not writing into it"
            " (the coloured shapes need a new or empty directory)"
        )
    if isinstance(owner, dict) and owner != params:
        raise ValueError(f"{root} holds coloured shapes made with {owner}, not {params}")
    return isinstance(_read_json(root / _DONE_MARKER), dict)


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def make_coco_shapes(
    root: str | Path,
    num_train: int = 400,
    num_val: int = 100,
    image_size: int = 160,
    seed: int = 0,
    max_shapes: int = 4,
) -> Path:
    """Writes the coloured-shapes data set (deterministic) under ``root``, or reuses a complete
    one made with the same arguments (see :func:`check_shapes_root`).

    Args:
        root: Output directory (created, with an ownership marker written first).
        num_train: Number of training images.
        num_val: Number of validation images.
        image_size: Side of the square images in pixels.
        seed: Seed of the generator; train and val use independent streams.
        max_shapes: Most shapes per image (at least one each).

    Raises:
        ValueError: ``root`` is not ours to write into, holds a data set made with other
            arguments, or a count is not a positive int.
    """
    for name, count in (("num_train", num_train), ("num_val", num_val), ("max_shapes", max_shapes)):
        check_positive_int(name, count, hint="an empty split cannot train or evaluate a detector")
    root = Path(root)
    params = {"num_train": num_train, "num_val": num_val, "image_size": image_size}
    params.update(seed=seed, max_shapes=max_shapes)
    if check_shapes_root(root, **params):
        return root
    root.mkdir(parents=True, exist_ok=True)
    (root / _OWNER_MARKER).write_text(json.dumps(params))
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    categories = [
        {"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(CATEGORIES)
    ]
    ann_id = 1
    for split_index, (split, count) in enumerate(zip(SPLITS, (num_train, num_val), strict=True)):
        rng = np.random.default_rng([seed, split_index])
        img_dir = root / f"{split}2017"
        img_dir.mkdir(exist_ok=True)
        images, annotations = [], []
        for i in range(count):
            # COCO ids are global: val ids follow the train ids.
            image_id = split_index * num_train + i + 1
            image, instances = _make_image(image_size, rng, max_shapes)
            file_name = f"{image_id:012d}.jpg"
            image.save(img_dir / file_name, quality=95)
            images.append(
                {"id": image_id, "file_name": file_name, "width": image_size, "height": image_size}
            )
            for label, poly in instances:
                (x0, y0), (x1, y1), (x, y) = poly.min(axis=0), poly.max(axis=0), poly.T
                area = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))  # shoelace
                polygon = [[round(v, 2) for v in poly.reshape(-1).tolist()]]
                box = [round(float(v), 2) for v in (x0, y0, x1 - x0, y1 - y0)]
                values = (ann_id, image_id, label + 1, polygon, round(float(area), 2), box, 0)
                annotations.append(dict(zip(_ANNOTATION_KEYS, values, strict=True)))
                ann_id += 1
        info = {"description": "lightly_matrix coloured shapes", "version": "1.0"}
        coco = {"info": info, "licenses": [], "images": images, "annotations": annotations}
        coco["categories"] = categories
        (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(coco))
    (root / _DONE_MARKER).write_text(json.dumps(params))
    return root
