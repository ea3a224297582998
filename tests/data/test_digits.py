"""The offline digits data: fixed stratified split, upsampled RGB images, datasets."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lightly_matrix.data.digits import DigitsDataset, load_digits_images


def test_split_sizes_and_stratification() -> None:
    train_images, train_labels = load_digits_images("train", image_size=16)
    test_images, test_labels = load_digits_images("test", image_size=16)
    assert len(train_images) == 1257 and len(test_images) == 540
    assert sorted(set(train_labels.tolist())) == list(range(10))
    # Stratified: every class keeps its share (within one image) in the test split.
    _, all_labels = load_digits_images("all", image_size=8)
    expected = np.bincount(all_labels) * 0.3
    assert np.all(np.abs(np.bincount(test_labels) - expected) <= 1.0)


def test_split_is_fixed() -> None:
    a_images, a_labels = load_digits_images("test", image_size=16)
    b_images, b_labels = load_digits_images("test", image_size=16)
    assert np.array_equal(a_labels, b_labels)
    assert np.array_equal(np.asarray(a_images[7]), np.asarray(b_images[7]))


def test_images_are_upsampled_rgb() -> None:
    images, _ = load_digits_images("train", image_size=32)
    assert images[0].mode == "RGB" and images[0].size == (32, 32)
    pixels = np.asarray(images[0])
    assert pixels.dtype == np.uint8 and pixels.max() > 100  # real strokes, not an empty image
    assert np.array_equal(pixels[..., 0], pixels[..., 2])  # grey levels in three channels


def test_dataset_applies_transform() -> None:
    dataset = DigitsDataset("test", transform=lambda image: [image, image], image_size=16)
    views, label = dataset[3]
    assert len(dataset) == 540
    assert isinstance(views[0], Image.Image) and 0 <= label < 10


def test_unknown_split() -> None:
    with pytest.raises(ValueError, match="split"):
        load_digits_images("validation")


def test_validation_split_is_carved_from_train() -> None:
    from lightly_matrix.data.digits import split_indices

    train, test = set(split_indices("train")), set(split_indices("test"))
    val, rest = split_indices("val"), split_indices("train_minus_val")
    assert len(val) == 252 and len(rest) == 1005
    assert set(val) | set(rest) == train and not set(val) & set(rest) and not set(val) & test
    # Stratified and fixed: each class keeps its share of the training split (within one image).
    _, train_labels = load_digits_images("train", image_size=8)
    _, val_labels = load_digits_images("val", image_size=8)
    assert np.all(np.abs(np.bincount(val_labels) - np.bincount(train_labels) * 0.2) <= 1.0)
    assert np.array_equal(split_indices("val"), val)
