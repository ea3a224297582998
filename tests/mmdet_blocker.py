"""Run the CLI in a subprocess where mmcv, mmdet and mmengine cannot be imported.

That is an install without the ``[mmdet]`` extra; the script also fails if anything imported one
of them anyway.
"""

from __future__ import annotations

import subprocess
import sys

_SCRIPT = """
import sys

class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("mmcv", "mmdet", "mmengine"):
            raise ModuleNotFoundError(f"No module named {name!r}")

sys.meta_path.insert(0, _Blocker())
from lightly_matrix.cli import main

code = main(sys.argv[1:])
assert not any(m.split(".")[0] in ("mmcv", "mmdet", "mmengine") for m in sys.modules)
sys.exit(code)
"""


def run_without_mmdet(*argv: str, cwd: str | None = None) -> subprocess.CompletedProcess:
    """``lightly-matrix ARGV`` without MMDetection; stdout and stderr captured as text."""
    return subprocess.run(
        [sys.executable, "-c", _SCRIPT, *argv],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )
