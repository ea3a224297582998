"""The pretraining methods' names and where their classes live: the one list of methods.

Torch-free, so the CLI's ``--help`` and its argument checks stay fast;
:data:`lightly_matrix.methods.METHOD_CLASSES` imports the classes from it.
"""

from __future__ import annotations

#: ``--method`` name -> ``module:Class`` of its LightningModule, in the CLI's order.
METHOD_SPECS: dict[str, str] = {
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
METHOD_NAMES = tuple(METHOD_SPECS)
