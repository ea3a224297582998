"""Small helpers shared across the package: they import only utils and ``errors``."""
