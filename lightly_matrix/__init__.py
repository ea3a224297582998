"""Matrix-information self-supervised learning for Lightly: Matrix-SSL, M-MAE, CorInfoMax."""

__version__ = "0.1.0"
