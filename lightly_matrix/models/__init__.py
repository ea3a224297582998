"""Model building blocks (heads) for the matrix-information methods."""
