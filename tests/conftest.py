"""Suite-wide test configuration: tests marked ``gpu`` skip cleanly where CUDA is absent."""

from __future__ import annotations

import pytest
import torch


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; torch.cuda.is_available() is False here")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def unwritable_dir(tmp_path_factory: pytest.TempPathFactory):
    """A folder in which no file can be made: a read-only one, or ``/proc`` for root."""
    import os
    from pathlib import Path

    folder = tmp_path_factory.mktemp("read_only")
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):  # root ignores permissions
            if not Path("/proc/self").is_dir():
                pytest.skip("runs as root and there is no /proc to stand for a read-only place")
            yield Path("/proc")
        else:
            yield folder
    finally:
        folder.chmod(0o755)
