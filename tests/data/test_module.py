"""Data module: default workers, per-sample seeding in workers and in the main process."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from lightly_matrix.data import module
from lightly_matrix.data.module import MAX_DEFAULT_WORKERS, SeededSamples, default_num_workers


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


class _Draws(Dataset):
    """Each sample is one draw from each global generator."""

    def __len__(self) -> int:
        return 6

    def __getitem__(self, index: int) -> tuple[list[float], float, float]:
        return torch.rand(2).tolist(), random.random(), float(np.random.rand())


def test_samples_are_seeded_by_index_alike_in_workers_and_in_the_main_process() -> None:
    data = SeededSamples(_Draws(), seed=3)
    data.epoch = 1
    torch.manual_seed(0), random.seed(0), np.random.seed(0)
    main_process = [data[i] for i in range(6)]
    # The main process's generators are where they were: the training step's draws are untouched.
    after = torch.rand(1).item(), random.random(), float(np.random.rand())
    torch.manual_seed(0), random.seed(0), np.random.seed(0)
    assert after == (torch.rand(1).item(), random.random(), float(np.random.rand()))

    assert main_process == [data[i] for i in range(6)]  # a sample is a function of its index
    assert len({str(sample) for sample in main_process}) == 6
    in_workers = list(DataLoader(data, batch_size=None, num_workers=2))
    assert [(list(map(float, t)), r, n) for t, r, n in in_workers] == main_process
    data.epoch = 2
    assert data[0] != main_process[0]  # and of the epoch
