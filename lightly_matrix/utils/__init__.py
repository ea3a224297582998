"""Small helpers shared across the package.

The lowest layer: nothing here imports from the rest of lightly_matrix.
"""
