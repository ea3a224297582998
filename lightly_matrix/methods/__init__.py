"""One LightningModule per pretraining method, in the style of Lightly's benchmark modules.

``METHODS`` has the entry shape of Lightly's benchmark harness
(``benchmarks/imagenet/resnet50/main.py``): ``{"model": cls, "transform": train_transform}``,
the transform being the method's default recipe at 224 px. ``METHOD_CLASSES`` maps the CLI's
``--method`` names to the classes, in the order of :data:`lightly_matrix.registry.METHOD_SPECS`,
the one list of methods.

Examples:
    >>> from lightly_matrix.methods import METHODS
    >>> entry = METHODS["corinfomax"]
    >>> model = entry["model"](batch_size_per_device=256, num_classes=1000)  # doctest: +SKIP
    >>> views = entry["transform"](pil_image)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any

from lightly_matrix.data.transforms import build_train_transform
from lightly_matrix.methods.barlowtwins import BarlowTwins
from lightly_matrix.methods.base import PretrainModule, build_backbone
from lightly_matrix.methods.byol import BYOL
from lightly_matrix.methods.corinfomax import CorInfoMax
from lightly_matrix.methods.mae import MAE
from lightly_matrix.methods.matrix_ssl import MatrixSSL
from lightly_matrix.methods.mec import MEC
from lightly_matrix.methods.mmae import MMAE
from lightly_matrix.methods.umae import UMAE
from lightly_matrix.methods.vicreg import VICReg
from lightly_matrix.registry import METHOD_SPECS


def _load(spec: str) -> type[PretrainModule]:
    module, _, name = spec.partition(":")
    cls: type[PretrainModule] = getattr(import_module(module), name)
    return cls


#: ``--method`` name -> module class.
METHOD_CLASSES: dict[str, type[PretrainModule]] = {
    name: _load(spec) for name, spec in METHOD_SPECS.items()
}


#: Methods that train on one masked view of a ViT; the others train on two augmented views.
MASKED_METHODS = frozenset({"mmae", "umae", "mae"})

#: Image size of Lightly's ImageNet harness, which builds every method at its defaults.
HARNESS_IMAGE_SIZE = 224


def default_train_transform(
    method: str, image_size: int = HARNESS_IMAGE_SIZE
) -> Callable[[Any], list[Any]]:
    """The training transform of ``method``'s default recipe: a list of one tensor per view."""
    cls = METHOD_CLASSES[method]
    num_views = 1 if method in MASKED_METHODS else 2
    return build_train_transform(cls.default_transform, image_size, num_views)


#: Lightly's benchmark-harness entries: ``{"model": cls, "transform": train_transform}``.
METHODS: dict[str, dict[str, Any]] = {
    name: {"model": cls, "transform": default_train_transform(name)}
    for name, cls in METHOD_CLASSES.items()
}

__all__ = [
    "BYOL",
    "HARNESS_IMAGE_SIZE",
    "MAE",
    "MASKED_METHODS",
    "MEC",
    "METHODS",
    "METHOD_CLASSES",
    "MMAE",
    "UMAE",
    "BarlowTwins",
    "CorInfoMax",
    "MatrixSSL",
    "PretrainModule",
    "VICReg",
    "build_backbone",
    "default_train_transform",
]
