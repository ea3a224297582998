"""Heads of the matrix-information methods, mirroring ``lightly.models.modules``."""

from lightly_matrix.models.modules.heads import (
    CorInfoMaxProjectionHead,
    MatrixSSLPredictionHead,
    MatrixSSLProjectionHead,
)

__all__ = ["CorInfoMaxProjectionHead", "MatrixSSLPredictionHead", "MatrixSSLProjectionHead"]
