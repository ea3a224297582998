"""scikit-learn's bundled handwritten digits (1,797 real 8x8 images, no download) as RGB images,
in fixed stratified splits: train/test 1,257 / 540 (seed 0), and for tuning ``"val"`` (252, seed 1)
and the other 1,005 ``"train_minus_val"`` images of train."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

NUM_CLASSES = 10
#: The named splits of :func:`split_indices`.
SPLITS = ("train", "test", "all", "val", "train_minus_val")


@lru_cache(maxsize=1)
def _splits() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The raw 8x8 images (0-16), labels, and the fixed indices of every split (module doc)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    labels, every = digits.target, np.arange(len(digits.target))
    fit, held_out = train_test_split(every, test_size=0.3, stratify=labels, random_state=0)
    train, test = np.sort(fit), np.sort(held_out)
    rest, val = train_test_split(train, test_size=0.2, stratify=labels[train], random_state=1)
    splits = {"train": train, "test": test, "all": every, "val": val, "train_minus_val": rest}
    return digits.images, labels, {name: np.sort(index) for name, index in splits.items()}


def split_indices(split: str) -> np.ndarray:
    """Indices into scikit-learn's 1,797 digits of one named split (see :data:`SPLITS`).

    Raises:
        ValueError: If ``split`` is not one of :data:`SPLITS`.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(map(repr, SPLITS))}, got {split!r}")
    return _splits()[2][split]


def load_digits_images(split: str, image_size: int = 32) -> tuple[list[Image.Image], np.ndarray]:
    """One split (see :data:`SPLITS`) as RGB PIL images upsampled to ``image_size``, and labels.

    Raises:
        ValueError: If ``split`` is not one of :data:`SPLITS`.
    """
    chosen = split_indices(split)
    images, labels, _ = _splits()
    pixels = (images[chosen] * (255.0 / 16.0)).round().astype(np.uint8)
    grey = [Image.fromarray(raw, mode="L") for raw in pixels]
    size = (image_size, image_size)
    rgb = [g.resize(size, Image.Resampling.BILINEAR).convert("RGB") for g in grey]
    return rgb, labels[chosen].astype(np.int64)


class DigitsDataset(Dataset):
    """The digits as a map-style data set of ``(transform(image), label)`` pairs.

    Args:
        split: One of :data:`SPLITS`.
        transform: Applied to each PIL image (a Lightly multi-view transform returns a list).
        image_size: Side length of the upsampled images.
    """

    num_classes = NUM_CLASSES

    def __init__(
        self,
        split: str = "train",
        transform: Callable[..., Any] | None = None,
        image_size: int = 32,
    ) -> None:
        self.images, self.labels = load_digits_images(split, image_size)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = self.images[index]
        return (self.transform(image) if self.transform else image), int(self.labels[index])
