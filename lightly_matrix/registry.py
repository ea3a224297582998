"""The pretraining methods' names, read without importing torch (``--help`` stays fast): built in,
registered by a class when it is defined, or another package's, through the entry-point group
:data:`ENTRY_POINT_GROUP` (an example: docs/development.md), without importing it."""

from __future__ import annotations

from importlib.metadata import entry_points

ENTRY_POINT_GROUP = "lightly_matrix.methods"
#: The built-in methods, ``name -> module:Class``, in the CLI's order.
BUILTIN_METHODS: dict[str, str] = {
    "matrix_ssl": "lightly_matrix.methods.matrix_ssl:MatrixSSL",
    "corinfomax": "lightly_matrix.methods.corinfomax:CorInfoMax",
    "mmae": "lightly_matrix.methods.mmae:MMAE",
    "umae": "lightly_matrix.methods.umae:UMAE",
    "mae": "lightly_matrix.methods.mae:MAE",
    "barlowtwins": "lightly_matrix.methods.barlowtwins:BarlowTwins",
    "vicreg": "lightly_matrix.methods.vicreg:VICReg",
    "byol": "lightly_matrix.methods.byol:BYOL",
    "mec": "lightly_matrix.methods.mec:MEC",
}
_defined: dict[str, str] = {}


def register(name: str, spec: str) -> None:
    """Records a method class defined in this process (``spec``: ``module:Class``)."""
    _defined[name] = spec


def method_specs() -> dict[str, str]:
    """Every known method, ``name -> module:Class``: built-in, entry points, defined here."""
    plugins = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return {**BUILTIN_METHODS, **plugins, **_defined}


def method_names() -> tuple[str, ...]:
    """The ``--method`` choices."""
    return tuple(method_specs())
