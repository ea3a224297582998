"""Data module defaults."""

from __future__ import annotations

import pytest

from lightly_matrix.data import module
from lightly_matrix.data.module import MAX_DEFAULT_WORKERS, default_num_workers


@pytest.mark.parametrize(
    ("cores", "devices", "workers"),
    [(2, 1, 1), (2, 2, 1), (16, 1, 15), (64, 8, 7), (96, 8, 11), (256, 1, MAX_DEFAULT_WORKERS)],
)
def test_default_workers_share_the_granted_cores(
    monkeypatch: pytest.MonkeyPatch, cores: int, devices: int, workers: int
) -> None:
    granted = set(range(cores))
    monkeypatch.setattr(module.os, "sched_getaffinity", lambda pid: granted, raising=False)
    monkeypatch.setattr(module.os, "cpu_count", lambda: 4 * cores)  # affinity wins
    assert default_num_workers(devices) == workers
