"""A method is one file: a class defined in a module of its own reaches the command line's
choices, ``--dry-run`` and Lightly's harness entries without a change to this package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXTRA_METHOD = '''
"""A two-view method in a few lines: a linear projector and Lightly's VICReg loss."""

from typing import Any, ClassVar, Unpack

from lightly.loss import VICRegLoss
from torch import nn

from lightly_matrix.methods.base import PretrainModule, SharedArgs


class TinyExtra(PretrainModule):
    method = "tiny_extra"
    shared_defaults: ClassVar[dict[str, Any]] = {"lr": 0.1, "weight_decay": 0.0}

    def __init__(self, *, output_dim: int = 8, **shared: Unpack[SharedArgs]) -> None:
        super().__init__()  # records the arguments, builds the backbone and the probe
        self.projection_head = nn.Linear(self.feature_dim, output_dim)
        self.criterion = VICRegLoss()
'''


def _python(tmp_path: Path, code: str) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    """The method's module, and the entry point a package's metadata would declare for it."""
    (tmp_path / "tiny_extra_method.py").write_text(EXTRA_METHOD)
    dist = tmp_path / "tiny_extra-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-extra\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[lightly_matrix.methods]\ntiny_extra = tiny_extra_method:TinyExtra\n"
    )
    return tmp_path


def test_a_new_method_file_reaches_help_dry_run_and_harness(plugin: Path) -> None:
    # --help lists it without importing torch (the entry point is read from metadata).
    out = _python(
        plugin,
        "import contextlib, io, sys\n"
        "from lightly_matrix.cli import main\n"
        "buffer = io.StringIO()\n"
        "with contextlib.redirect_stdout(buffer), contextlib.suppress(SystemExit):\n"
        "    main(['pretrain', '--help'])\n"
        "assert 'torch' not in sys.modules\n"
        "print(buffer.getvalue())\n",
    )
    assert "tiny_extra" in out
    # The dry run builds it; the harness dict has its entry with two views.
    out = _python(
        plugin,
        "from lightly_matrix.cli import main\n"
        "args = ['pretrain', '--method', 'tiny_extra', '--backbone', 'resnet18', '--epochs', '1',"
        " '--image-size', '32', '--batch-size', '16', '--hp', 'output_dim=4', '--dry-run']\n"
        "assert main(args) == 0\n"
        "from PIL import Image\n"
        "from lightly_matrix.methods import METHODS\n"
        "entry = METHODS['tiny_extra']\n"
        "print(entry['model'].__name__, len(entry['transform'](Image.new('RGB', (40, 40)))))\n",
    )
    document, harness = out.rsplit("}", 1)
    described = json.loads(document + "}")
    assert described["method"] == "tiny_extra" and described["preset"] is None
    assert described["hparams"]["output_dim"] == 4 and described["optimizer"]["base_lr"] == 0.1
    assert len(described["views"]) == 2
    assert harness.split() == ["TinyExtra", "2"]


def test_harness_merge_never_replaces_lightlys_entries() -> None:
    from lightly_matrix.methods import METHODS, add_to_harness

    lightly = {"byol": {"model": "lightly's"}, "vicreg": {"model": "lightly's"}}
    added = add_to_harness(lightly)
    assert lightly["byol"] == lightly["vicreg"] == {"model": "lightly's"}
    assert lightly["lightly_matrix_byol"] is METHODS["byol"]
    assert set(added) == set(lightly) - {"byol", "vicreg"}
    assert lightly["matrix_ssl"] is METHODS["matrix_ssl"]
    # Merged twice (or a prefixed name already taken): refused, nothing replaced (p43 a1b).
    with pytest.raises(ValueError, match=r"already has .*lightly_matrix_byol.*another prefix"):
        add_to_harness(lightly)
    assert lightly["lightly_matrix_byol"] is METHODS["byol"]
