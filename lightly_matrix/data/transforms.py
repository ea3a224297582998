"""Augmentations, all built from Lightly's transforms.

- ``digits``: SimCLR-style views for 32 px digits: random resized crops, small rotations and
  brightness/contrast jitter; no flips (they change digits) and no blur (8x8 sources are blurry).
- ``byol``: the asymmetric BYOL / MoCo v3 views (Matrix-SSL's and Lightly's Barlow Twins recipe).
- ``vicreg``: Lightly's VICReg views.
- ``mae``: Lightly's MAE crop-and-flip view.

Two-view methods get two views, masked-image methods one, from the same recipe when asked.
"""

from __future__ import annotations

from collections.abc import Callable

import torchvision.transforms as T
from lightly.transforms import (
    BYOLTransform,
    BYOLView1Transform,
    BYOLView2Transform,
    MAETransform,
    VICRegTransform,
)
from lightly.transforms.multi_view_transform import MultiViewTransform
from lightly.transforms.simclr_transform import SimCLRViewTransform
from lightly.transforms.utils import IMAGENET_NORMALIZE

TRANSFORMS = ("digits", "byol", "vicreg", "mae")


def digits_view(image_size: int) -> SimCLRViewTransform:
    """One augmented view for small grey-level digits (see the module docstring)."""
    return SimCLRViewTransform(
        input_size=image_size,
        cj_prob=0.8,
        cj_strength=0.5,
        cj_sat=0.0,
        cj_hue=0.0,
        min_scale=0.35,
        random_gray_scale=0.0,
        gaussian_blur=0.0,
        hf_prob=0.0,
        rr_prob=0.5,
        rr_degrees=15.0,
    )


def build_train_transform(kind: str, image_size: int, num_views: int) -> Callable:
    """The training transform: a callable returning a list of ``num_views`` tensors.

    Args:
        kind: One of :data:`TRANSFORMS`.
        image_size: Output size in pixels.
        num_views: 2 for two-view methods, 1 for masked-image methods.

    Raises:
        ValueError: For an unknown ``kind`` or ``num_views``.
    """
    if num_views not in (1, 2):
        raise ValueError(f"num_views must be 1 or 2, got {num_views}")
    if kind == "digits":
        return MultiViewTransform([digits_view(image_size)] * num_views)
    if kind == "byol":
        if num_views == 1:
            return MultiViewTransform([BYOLView1Transform(input_size=image_size)])
        return BYOLTransform(
            view_1_transform=BYOLView1Transform(input_size=image_size),
            view_2_transform=BYOLView2Transform(input_size=image_size),
        )
    if kind == "vicreg":
        transform = VICRegTransform(input_size=image_size)
        return MultiViewTransform(transform.transforms[:num_views])
    if kind == "mae":
        if num_views == 1:
            return MAETransform(input_size=image_size)
        return MultiViewTransform([MAETransform(input_size=image_size).transform] * 2)
    raise ValueError(f"unknown transform {kind!r}; choose one of {', '.join(TRANSFORMS)}")


def build_eval_transform(image_size: int, resize: bool = True) -> Callable:
    """Deterministic transform for frozen-feature evaluation: resize, centre crop, normalise."""
    steps: list[Callable] = []
    if resize:
        steps += [T.Resize(round(image_size * 256 / 224)), T.CenterCrop(image_size)]
    steps += [
        T.ToTensor(),
        T.Normalize(mean=IMAGENET_NORMALIZE["mean"], std=IMAGENET_NORMALIZE["std"]),
    ]
    return T.Compose(steps)
