"""The wheel holds every package and our mmdet configs, found from any directory once installed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import setuptools

ROOT = Path(__file__).resolve().parents[1]


def test_pyproject_lists_every_package():
    """``packages`` is a list (for the configs' package-dir), so new packages must be added."""
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = setuptools.find_packages(str(ROOT), include=["lightly_matrix", "lightly_matrix.*"])
    assert sorted(table["packages"]) == sorted([*found, "lightly_matrix.mmdet_configs"])
    assert table["package-dir"] == {"lightly_matrix.mmdet_configs": "mmdet_configs"}


@pytest.mark.slow
def test_wheel_ships_the_configs_and_finds_them_outside_the_checkout(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("lightly_matrix", "mmdet_configs"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp_path / "dist").glob("lightly_matrix-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = sorted(p.name for p in (ROOT / "mmdet_configs").glob("*.py"))
    assert len(configs) >= 11
    assert {f"lightly_matrix/mmdet_configs/{c}" for c in configs} <= names
    assert not any(n.startswith("mmdet_configs/") for n in names)

    # The unpacked wheel first on the path, run from a directory without the checkout in it.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    script = (
        "import lightly_matrix, json\n"
        "from mmengine.config import Config\n"
        "from lightly_matrix.transfer.configs import config_dir, resolve_config\n"
        "cfg = Config.fromfile(str(resolve_config('mask-rcnn_r18-c4_ms-1x_coco')))\n"
        "print(json.dumps([lightly_matrix.__file__, str(config_dir()),"
        " cfg.model.backbone.depth, cfg.model.backbone.init_cfg.type]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    package_file, found_dir, depth, init_type = json.loads(done.stdout)
    assert package_file == str(site / "lightly_matrix" / "__init__.py")
    assert found_dir == str(site / "lightly_matrix" / "mmdet_configs")
    assert depth == 18 and init_type == "PretrainedOrDefault"
