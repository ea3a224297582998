"""The GPU suite (``python -m benchmarks.gpu``): one script per table; see ``__main__``."""
