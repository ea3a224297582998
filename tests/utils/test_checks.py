"""check_positive_int and the argparse positive_int: one rule, at every place that counts."""

from __future__ import annotations

import argparse

import pytest
import torch

from lightly_matrix.functional import matrix_log_taylor
from lightly_matrix.models.modules.heads import MatrixSSLProjectionHead
from lightly_matrix.utils.checks import check_positive_int, is_number, positive_int

BAD = [0, -1, 2.5, 1.0, True, False, "3", None]


@pytest.mark.parametrize("value", [1, 2, 10**12])
def test_positive_ints_pass_through(value):
    assert check_positive_int("n", value) is value


@pytest.mark.parametrize("value", BAD)
def test_anything_else_names_the_argument_the_value_and_the_fix(value):
    with pytest.raises(ValueError) as info:
        check_positive_int("num_iters", value, hint="Detectron2 uses 200")
    message = str(info.value)
    assert len(message.splitlines()) == 1
    assert "num_iters" in message and repr(value) in message and "Detectron2 uses 200" in message


@pytest.mark.parametrize("value", [10**400, -(10**400), float("nan"), float("inf"), True, "1"])
def test_is_number_is_false_for_what_no_float_holds(value):
    assert not is_number(value)


def test_no_hint_no_dangling_separator():
    with pytest.raises(ValueError) as info:
        check_positive_int("depth", 0)
    assert not str(info.value).rstrip().endswith((";", ":"))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tool")
    parser.add_argument("--parallel", type=positive_int)
    return parser


def test_argparse_type_accepts_counts():
    assert _parser().parse_args(["--parallel", "3"]).parallel == 3


@pytest.mark.parametrize("text", ["0", "-2", "1.5", "two", "", "True"])
def test_argparse_type_refuses_with_the_flag_and_the_value(capsys, text):
    with pytest.raises(SystemExit) as info:
        _parser().parse_args(["--parallel", text])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--parallel" in err and repr(text) in err and "Traceback" not in err


# The call sites: each refuses exactly what the helper refuses, naming its own argument.


@pytest.mark.parametrize("value", BAD)
def test_heads_use_it(value):
    with pytest.raises(ValueError, match="hidden_dim"):
        MatrixSSLProjectionHead(input_dim=8, hidden_dim=value, output_dim=4)


@pytest.mark.parametrize("value", [0, -3, True, 2.0])
def test_taylor_order_uses_it(value):
    with pytest.raises(ValueError, match="order"):
        matrix_log_taylor(torch.eye(2), order=value)


def test_precise_bn_uses_it():
    pytest.importorskip("mmdet")
    from lightly_matrix.mmdet.precise_bn import PreciseBNHook, recompute_bn_stats

    for bad in BAD:
        with pytest.raises(ValueError, match="num_iters"):
            PreciseBNHook(num_iters=bad)
        with pytest.raises(ValueError, match="num_iters"):
            recompute_bn_stats(torch.nn.BatchNorm1d(2), [torch.randn(2, 2)], num_iters=bad)
    assert PreciseBNHook(num_iters=7).num_iters == 7


@pytest.mark.parametrize("flag", ["--gpus", "--nnodes"])
def test_transfer_refuses_zero_processes_before_anything_is_written(tmp_path, capsys, flag):
    from lightly_matrix.cli import main

    work = tmp_path / "w"
    with pytest.raises(SystemExit) as info:
        main(["transfer", "--demo", "--work-dir", str(work), flag, "0"])
    assert info.value.code == 2
    assert flag in capsys.readouterr().err.strip().splitlines()[-1]
    assert list(tmp_path.iterdir()) == []
