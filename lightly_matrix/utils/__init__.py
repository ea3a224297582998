"""Small helpers shared across the package; the lowest layer (imports only utils and errors)."""
