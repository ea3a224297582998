"""Augmentation recipes as data (one :class:`ViewSpec` per view; two-view methods get both, masked
ones the first): ``digits`` (no flips or blur for 8x8 digits), Lightly's ``byol`` and ``vicreg``,
Matrix-SSL's ``mocov3`` (BYOL's from 20%), CorInfoMax's ``corinfomax``, ``corinfomax_cifar10`` and
``corinfomax_cifar100`` (BYOL's, bicubic, each set's mean and std), MAE's ``mae`` (from 20%)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torchvision.transforms as T
from lightly.transforms.gaussian_blur import GaussianBlur
from lightly.transforms.multi_view_transform import MultiViewTransform
from lightly.transforms.solarize import RandomSolarization
from lightly.transforms.utils import IMAGENET_NORMALIZE

IMAGENET_MEAN = tuple(IMAGENET_NORMALIZE["mean"])
IMAGENET_STD = tuple(IMAGENET_NORMALIZE["std"])
# CorInfoMax's cifars-tiny/transform_utils.py.
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)


@dataclass(frozen=True)
class ViewSpec:
    """One augmented view, in the order it is applied: crop, rotation, flip, colour, blur,
    solarisation, then tensor conversion and normalisation."""

    crop_min_scale: float = 0.08
    crop_max_scale: float = 1.0
    interpolation: str = "bilinear"
    rotation_prob: float = 0.0
    rotation_degrees: float = 0.0
    hflip_prob: float = 0.5
    color_jitter_prob: float = 0.8
    # brightness, contrast, saturation, hue
    color_jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.2, 0.1)
    grayscale_prob: float = 0.2
    blur_prob: float = 0.0
    blur_sigmas: tuple[float, float] = (0.1, 2.0)
    solarize_prob: float = 0.0
    normalize_mean: tuple[float, ...] = IMAGENET_MEAN
    normalize_std: tuple[float, ...] = IMAGENET_STD

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in vars(self).items()}


_BYOL_1 = ViewSpec(blur_prob=1.0)
_BYOL_2 = ViewSpec(blur_prob=0.1, solarize_prob=0.2)


def _corinfomax(mean: tuple[float, ...], std: tuple[float, ...]) -> tuple[ViewSpec, ViewSpec]:
    return tuple(  # type: ignore[return-value]
        dataclasses.replace(v, interpolation="bicubic", normalize_mean=mean, normalize_std=std)
        for v in (_BYOL_1, _BYOL_2)
    )


_DIGITS = ViewSpec(
    crop_min_scale=0.35,
    rotation_prob=0.5,
    rotation_degrees=15.0,
    hflip_prob=0.0,
    color_jitter=(0.4, 0.4, 0.0, 0.0),
    grayscale_prob=0.0,
)
_MAE = ViewSpec(
    crop_min_scale=0.2,
    interpolation="bicubic",
    color_jitter_prob=0.0,
    color_jitter=(0.0, 0.0, 0.0, 0.0),
    grayscale_prob=0.0,
)

#: Recipe name -> its views (view 1, view 2).
RECIPES: dict[str, tuple[ViewSpec, ...]] = {
    "digits": (_DIGITS, _DIGITS),
    "byol": (_BYOL_1, _BYOL_2),
    "mocov3": tuple(dataclasses.replace(v, crop_min_scale=0.2) for v in (_BYOL_1, _BYOL_2)),
    "corinfomax": _corinfomax(IMAGENET_MEAN, IMAGENET_STD),
    "corinfomax_cifar10": _corinfomax(CIFAR10_MEAN, CIFAR10_STD),
    "corinfomax_cifar100": _corinfomax(CIFAR100_MEAN, CIFAR100_STD),
    "vicreg": (ViewSpec(blur_prob=0.5, solarize_prob=0.1),) * 2,
    "mae": (_MAE, _MAE),
}


def recipe_views(
    kind: str, num_views: int, crop_min_scale: float | None = None
) -> tuple[ViewSpec, ...]:
    """The views of recipe ``kind`` for a method of ``num_views`` views (1 or 2).

    Raises:
        ValueError: For an unknown ``kind``, ``num_views`` or crop scale.
    """
    if kind not in RECIPES:
        raise ValueError(f"unknown transform {kind!r}; choose one of {', '.join(RECIPES)}")
    if num_views not in (1, 2):
        raise ValueError(f"num_views must be 1 or 2, got {num_views}")
    if crop_min_scale is not None and not 0 < crop_min_scale <= 1:
        raise ValueError(f"crop_min_scale must be in (0, 1], got {crop_min_scale}")
    views = RECIPES[kind][:num_views]
    if crop_min_scale is not None:
        views = tuple(dataclasses.replace(v, crop_min_scale=crop_min_scale) for v in views)
    return views


def build_view(spec: ViewSpec, image_size: int) -> Callable:
    """The torchvision/Lightly transform of one view."""
    steps: list[Callable] = [
        T.RandomResizedCrop(
            image_size,
            scale=(spec.crop_min_scale, spec.crop_max_scale),
            interpolation=T.InterpolationMode(spec.interpolation),
        )
    ]
    if spec.rotation_prob > 0:
        steps.append(T.RandomApply([T.RandomRotation(spec.rotation_degrees)], p=spec.rotation_prob))
    if spec.hflip_prob > 0:
        steps.append(T.RandomHorizontalFlip(p=spec.hflip_prob))
    if spec.color_jitter_prob > 0:
        steps.append(T.RandomApply([T.ColorJitter(*spec.color_jitter)], p=spec.color_jitter_prob))
    if spec.grayscale_prob > 0:
        steps.append(T.RandomGrayscale(p=spec.grayscale_prob))
    if spec.blur_prob > 0:
        steps.append(GaussianBlur(prob=spec.blur_prob, sigmas=spec.blur_sigmas))
    if spec.solarize_prob > 0:
        steps.append(RandomSolarization(prob=spec.solarize_prob))
    steps += [T.ToTensor(), T.Normalize(mean=spec.normalize_mean, std=spec.normalize_std)]
    return T.Compose(steps)


def build_train_transform(
    views: str | tuple[ViewSpec, ...], image_size: int, num_views: int = 2
) -> Callable:
    """The training transform (one tensor per view) of views, or of a recipe's first ``num_views``.

    Raises:
        ValueError: For an unknown recipe or ``num_views``.
    """
    specs = recipe_views(views, num_views) if isinstance(views, str) else views
    return MultiViewTransform([build_view(spec, image_size) for spec in specs])


def build_eval_transform(
    image_size: int,
    resize: bool = True,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
) -> Callable:
    """Deterministic transform for frozen-feature evaluation: resize, centre crop, normalise."""
    steps: list[Callable] = []
    if resize:
        steps += [T.Resize(round(image_size * 256 / 224)), T.CenterCrop(image_size)]
    steps += [T.ToTensor(), T.Normalize(mean=mean, std=std)]
    return T.Compose(steps)
