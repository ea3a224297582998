"""The built wheel installs into fresh virtual environments and works outside the checkout.

Runs ``tools/check_install_outside.sh`` (see there): core-only install (no mmcv, mmdet,
mmengine) with losses, heads, a 1-epoch pretraining, export and ``transfer``'s one-line refusal;
then the ``[mmdet]`` extra with ``transfer`` on tiny generated data; then mmdet's own
``tools/train.py`` on a config written by ``lightly-matrix configs``, whose saved detector must
hold the exported weights exactly. Minutes (two cores): select it with ``-m install`` or leave it
out with ``-m "not install"``; ``make test`` runs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "check_install_outside.sh"


def _checkout_state() -> set[str]:
    """Build leftovers a wheel build in the checkout would create."""
    return {p.name for p in ROOT.iterdir() if p.name in ("build", "dist")} | {
        str(p.relative_to(ROOT)) for p in ROOT.glob("*.egg-info")
    }


@pytest.mark.install
@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    cache = Path(os.environ.get("LIGHTLY_MATRIX_CACHE", Path.home() / ".cache/lightly_matrix"))
    if not list(cache.glob("wheels/mmcv-*/mmcv-*.whl")):
        pytest.fail(f"no cached mmcv wheel under {cache}/wheels; run tools/install.sh first")
    before = _checkout_state()
    work = tmp_path / "outside"
    start = time.perf_counter()
    try:
        done = subprocess.run(
            ["bash", str(SCRIPT), str(work)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=900,
        )
    finally:
        # A venv with torch is ~6 GB; pytest keeps its last temporary directories.
        shutil.rmtree(work / "venv", ignore_errors=True)
    steps = [line for line in done.stderr.splitlines() if line.startswith("[outside]")]
    print("\n" + "\n".join(steps) + f"\n(total {time.perf_counter() - start:.0f} s)")
    assert done.returncode == 0, done.stderr[-6000:]
    assert steps[-1].endswith("all checks passed"), steps
    # Each stage reported (the script exits at the first failed check).
    for expected in (
        "core ok",
        "transfer refuses in one line",
        "transfer wrote results.json",
        "stock train.py",
    ):
        assert any(expected in line for line in steps), (expected, steps)
    assert _checkout_state() == before  # the wheel was built from a copy
    shutil.rmtree(work)  # checkpoints and logs are kept only when something failed


def test_script_refuses_a_non_empty_work_dir(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    done = subprocess.run(
        ["bash", str(SCRIPT), str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "is not empty" in done.stderr
    assert (tmp_path / "mine.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]
