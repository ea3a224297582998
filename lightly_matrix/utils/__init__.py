"""Small helpers shared across the package (the lowest layer: imports nothing else from lightly_matrix)."""
