"""One writer per output folder: a second holder is refused with the first one's pid, the lock
costs little, and it dies with its process (``kill -9`` included)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from messages import assert_names

from lightly_matrix.errors import UserError
from lightly_matrix.utils.lock import LOCK_NAME, folder_lock


def test_a_second_holder_is_refused_until_the_first_is_killed(tmp_path: Path) -> None:
    hold = (
        "import sys, time; from pathlib import Path; from lightly_matrix.utils.lock import "
        f"folder_lock\nwith folder_lock(Path({str(tmp_path)!r})):\n"
        "    print('held', flush=True); time.sleep(300)"
    )
    holder = subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(UserError) as info, folder_lock(tmp_path, "--work-dir"):
            pass
        assert_names(info, str(tmp_path), f"pid {holder.pid}", "--work-dir")
    finally:
        holder.kill()  # SIGKILL: no clean-up runs, the kernel drops the lock
        holder.wait()
    with folder_lock(tmp_path):
        assert (tmp_path / LOCK_NAME).read_text().strip() != str(holder.pid)


def test_taking_the_lock_costs_under_50_ms(tmp_path: Path) -> None:
    start = time.perf_counter()
    for _ in range(10):
        with folder_lock(tmp_path):
            pass
    assert (time.perf_counter() - start) / 10 < 0.05


def test_the_lock_file_goes_when_done(tmp_path: Path) -> None:
    with folder_lock(tmp_path):
        assert (tmp_path / LOCK_NAME).is_file()
    assert not any(tmp_path.iterdir())
