"""One LightningModule per pretraining method, in the style of Lightly's benchmark modules.

``METHODS`` maps the CLI's ``--method`` names to the classes.
"""

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

METHODS: dict[str, type[PretrainModule]] = {
    "matrix_ssl": MatrixSSL,
    "corinfomax": CorInfoMax,
    "mmae": MMAE,
    "umae": UMAE,
    "mae": MAE,
    "barlowtwins": BarlowTwins,
    "vicreg": VICReg,
    "byol": BYOL,
    "mec": MEC,
}

#: Methods that train on one masked view of a ViT; the others train on two augmented views.
MASKED_METHODS = frozenset({"mmae", "umae", "mae"})

__all__ = [
    "BYOL",
    "MAE",
    "MASKED_METHODS",
    "MEC",
    "METHODS",
    "MMAE",
    "UMAE",
    "BarlowTwins",
    "CorInfoMax",
    "MatrixSSL",
    "PretrainModule",
    "VICReg",
    "build_backbone",
]
