"""Pure, stateless matrix functions behind the losses, and collapse diagnostics."""

from lightly_matrix.functional._linalg import (
    logdet_identity_plus_cross,
    logdet_identity_plus_gram,
    logdet_spd,
    matrix_log,
    matrix_log_taylor,
    symmetric_matrix_function,
    trace_powers,
)
from lightly_matrix.functional.diagnostics import (
    covariance_spectrum,
    effective_rank,
    matrix_entropy,
)
from lightly_matrix.functional.matrix_cross_entropy import (
    matrix_cross_entropy,
    mce_alignment,
    mce_uniformity,
)

__all__ = [
    "covariance_spectrum",
    "effective_rank",
    "logdet_identity_plus_cross",
    "logdet_identity_plus_gram",
    "logdet_spd",
    "matrix_cross_entropy",
    "matrix_entropy",
    "matrix_log",
    "matrix_log_taylor",
    "mce_alignment",
    "mce_uniformity",
    "symmetric_matrix_function",
    "trace_powers",
]
