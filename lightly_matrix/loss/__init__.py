"""Matrix-information losses, one per file, in Lightly's style."""

from lightly_matrix.loss._common import BatchLoss
from lightly_matrix.loss.corinfomax_loss import CorInfoMaxLoss
from lightly_matrix.loss.matrix_entropy_loss import MatrixEntropyLoss
from lightly_matrix.loss.matrix_ssl_loss import MatrixSSLLoss
from lightly_matrix.loss.mec_loss import MECLoss
from lightly_matrix.loss.umae_loss import UMAELoss

__all__ = [
    "BatchLoss",
    "CorInfoMaxLoss",
    "MECLoss",
    "MatrixEntropyLoss",
    "MatrixSSLLoss",
    "UMAELoss",
]
