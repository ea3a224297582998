"""One LightningModule per pretraining method, in the style of Lightly's benchmark modules.

Defining a method's class registers it in :data:`METHOD_CLASSES` (``--method`` name -> class)
and :data:`METHODS` (entries for Lightly's benchmark harness); :func:`add_to_harness` adds them
beside Lightly's own ``byol``, ``vicreg`` and ``barlowtwins`` instead of replacing them.

Examples:
    >>> from lightly_matrix.methods import METHODS
    >>> entry = METHODS["corinfomax"]
    >>> model = entry["model"](batch_size_per_device=256, num_classes=1000)  # doctest: +SKIP
    >>> views = entry["transform"](pil_image)  # doctest: +SKIP
    >>> harness = {"byol": "Lightly's BYOL entry"}
    >>> add_to_harness(harness)[:3]
    ['matrix_ssl', 'corinfomax', 'mmae']
    >>> harness["byol"], harness["lightly_matrix_byol"]["model"].__name__
    ("Lightly's BYOL entry", 'BYOL')
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from lightly_matrix.methods.barlowtwins import BarlowTwins
from lightly_matrix.methods.base import (
    METHOD_CLASSES,
    METHODS,
    PretrainModule,
    SharedArgs,
    build_backbone,
)
from lightly_matrix.methods.byol import BYOL
from lightly_matrix.methods.corinfomax import CorInfoMax
from lightly_matrix.methods.ema_teacher import EMATeacherModule, TeacherArgs
from lightly_matrix.methods.mae import MAE
from lightly_matrix.methods.matrix_ssl import MatrixSSL
from lightly_matrix.methods.mec import MEC
from lightly_matrix.methods.mmae import MMAE
from lightly_matrix.methods.umae import UMAE
from lightly_matrix.methods.vicreg import VICReg
from lightly_matrix.registry import BUILTIN_METHODS, method_specs

# Dependencies register first (MMAE imports MAE): keep the CLI's order.
for _name in BUILTIN_METHODS:
    METHOD_CLASSES[_name] = METHOD_CLASSES.pop(_name)
    METHODS[_name] = METHODS.pop(_name)


def method_class(name: str) -> type[PretrainModule]:
    """The class of ``--method name``, importing a plugin's module (entry point) when needed.

    Raises:
        KeyError: If no method of that name is known.
    """
    if name not in METHOD_CLASSES:
        import_module(method_specs()[name].partition(":")[0])
    return METHOD_CLASSES[name]


def add_to_harness(harness: dict[str, Any], prefix: str = "lightly_matrix_") -> list[str]:
    """Adds :data:`METHODS` to a harness's ``METHODS``, replacing nothing; returns the keys added.

    A name already taken (Lightly's ``byol``, ...) gets ``prefix``; taken too: ``ValueError``.
    """
    added = [name if name not in harness else prefix + name for name in METHODS]
    if taken := [key for key in added if key in harness]:
        raise ValueError(f"the harness already has {', '.join(taken)}; pass another prefix")
    harness.update(zip(added, METHODS.values(), strict=True))
    return added


__all__ = [
    "BYOL",
    "MAE",
    "MEC",
    "METHODS",
    "METHOD_CLASSES",
    "MMAE",
    "UMAE",
    "BarlowTwins",
    "CorInfoMax",
    "EMATeacherModule",
    "MatrixSSL",
    "PretrainModule",
    "SharedArgs",
    "TeacherArgs",
    "VICReg",
    "add_to_harness",
    "build_backbone",
    "method_class",
]
