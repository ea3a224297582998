"""The core (losses, heads, functions) imports neither MMDetection's stack nor Lightning.

``pip install lightly-matrix`` without the ``[mmdet]`` extra has no mmcv, mmdet or mmengine, and
code that only wants a loss should not pay for Lightning. Each check runs in a fresh interpreter
(``python -X importtime``), so modules imported by other tests do not hide an eager import; the
measured import times are printed (``pytest -s``) for the README.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: Top-level packages the core must not import: the [mmdet] extra, and Lightning.
FORBIDDEN = ("mmcv", "mmdet", "mmengine", "pytorch_lightning", "lightning", "lightning_fabric")
#: Each core package with a little use of it (``lightly_matrix.loss`` imports ``.functional``).
USES = {
    "lightly_matrix.loss": (
        "import torch\n"
        "from lightly_matrix.functional import effective_rank\n"
        "z = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))\n"
        "assert torch.isfinite(lightly_matrix.loss.MatrixSSLLoss()(z, z + 0.1))\n"
        "assert 1.0 < float(effective_rank(z)) <= 4.0\n"
    ),
    "lightly_matrix.models.modules": (
        "import torch\n"
        "head = lightly_matrix.models.modules.MatrixSSLProjectionHead(8, 16, 4)\n"
        "assert head(torch.randn(6, 8)).shape == (6, 4)\n"
    ),
}


def _import_fresh(module: str, body: str = "") -> tuple[set[str], float]:
    """Imports ``module`` (then runs ``body``) in a new interpreter.

    Returns the top-level packages in ``sys.modules`` afterwards and the module's cumulative
    import time in seconds, read from ``-X importtime``.
    """
    script = (
        f"import json, sys\nimport {module}\n{body}"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # "import time: self [us] | cumulative [us] | name"; the module's own line is its total.
    (cumulative,) = (
        int(line.split("|")[1])
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and line.split("|")[-1].strip() == module
    )
    return set(json.loads(done.stdout.splitlines()[-1])), cumulative / 1e6


@pytest.mark.parametrize("module", sorted(USES))
def test_core_imports_neither_the_mmdet_stack_nor_lightning(module):
    loaded, seconds = _import_fresh(module, USES[module])
    assert "torch" in loaded  # the check ran for real
    assert not set(FORBIDDEN) & loaded, sorted(set(FORBIDDEN) & loaded)
    print(f"\nimport {module}: {seconds:.2f} s (fresh interpreter, -X importtime)")


def test_cli_entry_point_imports_no_torch():
    """``lightly-matrix --help`` and ``--version`` stay instant: no torch behind the entry point."""
    loaded, seconds = _import_fresh("lightly_matrix.cli", "assert lightly_matrix.__version__\n")
    assert "lightly_matrix" in loaded
    assert not {"torch", *FORBIDDEN} & loaded, sorted({"torch", *FORBIDDEN} & loaded)
    print(f"\nimport lightly_matrix.cli: {seconds:.3f} s")
