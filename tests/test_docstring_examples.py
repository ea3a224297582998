"""The ``Examples:`` blocks of the public losses, heads and functions run as written."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "lightly_matrix.functional._linalg",
    "lightly_matrix.functional.matrix_cross_entropy",
    "lightly_matrix.functional.diagnostics",
    "lightly_matrix.loss.matrix_ssl_loss",
    "lightly_matrix.loss.mec_loss",
    "lightly_matrix.loss.corinfomax_loss",
    "lightly_matrix.loss.matrix_entropy_loss",
    "lightly_matrix.loss.umae_loss",
    "lightly_matrix.models.modules.heads",
    "lightly_matrix.mmdet.precise_bn",
    "lightly_matrix.transfer.results",
    "lightly_matrix.data.folder",
    "lightly_matrix.utils.checks",
    "lightly_matrix.utils.io",
    "lightly_matrix.utils.loop_progress",
    "lightly_matrix.utils.text",
    "lightly_matrix.user_files",
    "lightly_matrix.mmdet.vit",
    "lightly_matrix.errors",
]


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, extraglobs={"torch": importlib.import_module("torch")})
    assert result.attempted > 0, f"{name} has no Examples"
    assert result.failed == 0
