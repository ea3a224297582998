"""scikit-learn's bundled handwritten digits as a small, offline image data set.

1,797 real 8x8 grey-level images of the digits 0-9 ship inside scikit-learn, so this data needs no
download. They are upsampled to ``image_size`` pixels and converted to RGB so that the
ImageNet-style backbones and Lightly's transforms apply unchanged. The train/test split is
stratified and fixed (``random_state=0``), so every run and every method sees the same 1,257
training and 540 test images.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

NUM_CLASSES = 10
TEST_FRACTION = 0.3
SPLIT_SEED = 0


@lru_cache(maxsize=1)
def _split_indices() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Returns the raw 8x8 images (0-16), labels, and the fixed train and test indices."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    indices = np.arange(len(digits.target))
    train_idx, test_idx = train_test_split(
        indices, test_size=TEST_FRACTION, stratify=digits.target, random_state=SPLIT_SEED
    )
    return digits.images, digits.target, np.sort(train_idx), np.sort(test_idx)


def load_digits_images(split: str, image_size: int = 32) -> tuple[list[Image.Image], np.ndarray]:
    """Loads one split of the digits as upsampled RGB PIL images.

    Args:
        split: ``"train"`` (1,257 images), ``"test"`` (540 images) or ``"all"`` (1,797).
        image_size: Side length in pixels of the returned images (bilinear upsampling of 8x8).

    Returns:
        The images and their integer labels (0-9).

    Raises:
        ValueError: If ``split`` is not one of the three names.
    """
    images, labels, train_idx, test_idx = _split_indices()
    chosen = {"train": train_idx, "test": test_idx, "all": np.arange(len(labels))}.get(split)
    if chosen is None:
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    pil_images = []
    for raw in images[chosen]:
        grey = Image.fromarray((raw * (255.0 / 16.0)).round().astype(np.uint8), mode="L")
        grey = grey.resize((image_size, image_size), Image.Resampling.BILINEAR)
        pil_images.append(grey.convert("RGB"))
    return pil_images, labels[chosen].astype(np.int64)


class DigitsDataset(Dataset):
    """The digits as a map-style data set of ``(transform(image), label)`` pairs.

    Args:
        split: ``"train"``, ``"test"`` or ``"all"``.
        transform: Applied to each PIL image (a Lightly multi-view transform returns a list).
        image_size: Side length of the upsampled images.
    """

    num_classes = NUM_CLASSES

    def __init__(
        self,
        split: str = "train",
        transform: Callable[[Image.Image], Any] | None = None,
        image_size: int = 32,
    ) -> None:
        self.images, self.labels = load_digits_images(split, image_size)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = self.images[index]
        return (self.transform(image) if self.transform else image), int(self.labels[index])
