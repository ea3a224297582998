"""Fixtures of the report tests: a saved pretraining run and a saved transfer work dir."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_runs import make_pretrain_run, make_transfer_run


@pytest.fixture
def pretrain_run(tmp_path: Path) -> Path:
    return make_pretrain_run(tmp_path / "run")


@pytest.fixture
def transfer_run(tmp_path: Path) -> Path:
    return make_transfer_run(tmp_path / "work")
