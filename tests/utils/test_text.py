"""first_line and markdown_table: one of each, and every table the package and benchmarks print
is byte-identical to what the hand-written tables printed before they shared it."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import lightly_matrix.utils
from lightly_matrix import evaluation
from lightly_matrix.errors import first_line
from lightly_matrix.transfer import results
from lightly_matrix.utils.text import markdown_row, markdown_table, plain_cell

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.gpu import common  # noqa: E402

# Outputs of the four hand-written table functions before this change (same inputs as below).
FORMAT_TABLE = "\n".join(
    [
        "| epoch | kNN top-1 (%) | linear top-1 (%) | 10 labels/class top-1 (%) | eval time (s) |",
        "|---|---|---|---|---|",
        "| 0 | 12.35 |  | 3.00 | 1.50 |",
        "| 5 | 80.00 |  |  | 2.25 |",
    ]
)
GPU_TABLE = "\n".join(
    [
        "| name | ok | median ms | n |",
        "|---|---|---|---|",
        "| a | yes | 1.23 | 3 |",
        "| b | no | nan | - |",
        "| - | - | - | - |",
    ]
)
MARKDOWN_ROW_RANDOM = "\n".join(
    [
        "| random init | - | - | c | - | - | - | - | - | - |",
    ]
)
TRANSFER_TABLE = "\n".join(
    [
        "| method | backbone | pretrain epochs | config | AP_bb | AP50_bb | AP75_bb | AP_mk"
        " | AP50_mk | AP75_mk |",
        "|---|---|---|---|---|---|---|---|---|---|",
        "| matrix_ssl | resnet18 | 2 | mask_rcnn_r18_fpn_1x | 12.3 | 30.0 | - | 10.0 | - | - |",
        "| random init | - | - | c | - | - | - | - | - | - |",
    ]
)
COMPARISON_TABLE_LINES = [
    "| method | pretrain epochs | AP_bb | AP50_bb | AP75_bb | AP_mk | AP50_mk | AP75_mk | source |",
    "|---|---|---|---|---|---|---|---|---|",
    "| ours: matrix_ssl | 100 | 40.1 | 60.0 | 44.0 | 36.0 | 57.0 | - | this run |",
    "| MoCo v2 | 200 | 40.2 | 59.7 | 44.2 | 36.1 | 56.7 | 38.8 | mmselfsup model zoo |",
]


def test_first_line():
    assert first_line(RuntimeError("\n  first\nsecond")) == "first"
    assert first_line(ValueError("only")) == "only"
    assert first_line(RuntimeError()) == "RuntimeError"
    assert first_line(KeyError()) == "KeyError"


def test_short_error_of_the_gpu_suite_is_type_and_first_line():
    assert common.short_error(RuntimeError("CUDA out of memory\nmore")) == (
        "RuntimeError: CUDA out of memory"
    )
    assert common.short_error(RuntimeError()) == "RuntimeError"
    assert len(common.short_error(ValueError("x" * 500))) == 200


def test_markdown_table_against_a_closed_form():
    columns = [("a", "A"), ("b", "B")]
    rows = [{"a": 1, "b": 0.125}, {"b": "x"}]
    expected = "| A | B |\n|---|---|\n| 1 | 0.12 |\n|  | x |"
    assert markdown_table(rows, columns) == expected
    assert markdown_table([], columns) == "| A | B |\n|---|---|"
    assert markdown_table(iter(rows), columns, cell=lambda v: "?") == (
        "| A | B |\n|---|---|\n| ? | ? |\n| ? | ? |"
    )
    assert markdown_row(["x", "y"]) == "| x | y |"
    assert [plain_cell(v) for v in (None, 2.0, 3, "s")] == ["", "2.00", "3", "s"]


def test_evaluation_table_is_unchanged():
    rows = [
        {"epoch": 0, "knn_top1": 12.345, "linear_top1": None, "few_label_top1": 3.0, "eval_s": 1.5},
        {"epoch": 5, "knn_top1": 80.0, "eval_s": 2.25, "extra": "x"},
    ]
    assert markdown_table(rows, evaluation.EVAL_COLUMNS) == FORMAT_TABLE


def test_gpu_suite_table_is_unchanged():
    columns = [("name", "name"), ("ok", "ok"), ("ms", "median ms"), ("n", "n")]
    rows = [
        {"name": "a", "ok": True, "ms": 1.23456, "n": 3},
        {"name": "b", "ok": False, "ms": float("nan")},
        {"name": None},
    ]
    assert common.markdown_table(columns, rows) == GPU_TABLE


def test_transfer_tables_are_unchanged():
    run = {
        "method": "matrix_ssl",
        "architecture": "resnet18",
        "pretrain_epochs": 2,
        "config": "mask_rcnn_r18_fpn_1x",
        "checkpoint": "x.pth",
        "bbox": {"mAP": 0.1234, "AP50": 0.3, "AP75": -1.0},
        "segm": {"mAP": 0.1},
    }
    random_init = {"config": "c", "bbox": {}}
    assert results.markdown_row(random_init) == MARKDOWN_ROW_RANDOM
    table = results.markdown_table([results.markdown_row(run), results.markdown_row(random_init)])
    assert table == TRANSFER_TABLE


def test_comparison_table_is_unchanged():
    ours = {
        "protocol": "mmselfsup_fpn",
        "architecture": "resnet50",
        "method": "matrix_ssl",
        "pretrain_epochs": 100,
        "bbox": {"mAP": 0.401, "AP50": 0.6, "AP75": 0.44},
        "segm": {"mAP": 0.36, "AP50": 0.57, "AP75": -1},
    }
    lines = results.comparison_table(ours).splitlines()
    assert lines[2:6] == COMPARISON_TABLE_LINES
    assert lines[1] == "" and lines[0].startswith("Published numbers for protocol mmselfsup_fpn")


@pytest.mark.parametrize("module", sorted(Path(lightly_matrix.utils.__file__).parent.glob("*.py")))
def test_utils_is_the_lowest_layer(module):
    # utils imports nothing of the package but itself and errors.py, which imports nothing of it.
    allowed = ("lightly_matrix.utils", "lightly_matrix.errors")
    for node in ast.walk(ast.parse(module.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        found = [n for n in names if n.startswith("lightly_matrix") and not n.startswith(allowed)]
        assert not found, module.name
    errors = ast.parse((Path(lightly_matrix.utils.__file__).parents[1] / "errors.py").read_text())
    imported = [n.module for n in ast.walk(errors) if isinstance(n, ast.ImportFrom) and n.module]
    assert not [m for m in imported if m.startswith("lightly_matrix")]


def test_demo_report_tables_are_unchanged():
    sys.path.insert(0, str(ROOT / "tools"))
    import demo_report

    metrics = {
        "history": [{"epoch": 0, "knn_top1": 10.0, "linear_top1": 11.5, "few_label_top1": 9.25}],
        "final": {"epoch": 5, "knn_top1": 50.0, "linear_top1": 61.5, "few_label_top1": 40.0},
    }
    reference = {
        "probes": {"knn_top1": {"change": "+40 ± 1"}, "linear_top1": {"change": "+50 ± 2"}},
        "seeds": [0, 1, 2],
        "transfer": [{"row": "random init", "seeds": 3, "AP_bb": "1.0 ± 0.1", "AP_mk": "2.0"}],
    }
    assert demo_report.probe_table(metrics, reference)[1:] == [
        "| probe | random init (epoch 0) | pretrained | change | reference change (3 seeds) |",
        "|---|---|---|---|---|",
        "| kNN top-1 | 10.00 | 50.00 | +40.00 | +40 ± 1 |",
        "| linear top-1 | 11.50 | 61.50 | +50.00 | +50 ± 2 |",
        "| 10 labels/class top-1 | 9.25 | 40.00 | +30.75 |",  # no reference for it: as before
    ]
    results = {"bbox": {"mAP": 0.1234}, "segm": {"mAP": 0.2}}
    assert demo_report.transfer_table(results, reference)[1:] == [
        "| backbone init | AP_bb | AP_mk |",
        "|---|---|---|",
        "| this run's export | 12.3 | 20.0 |",
        "| random init (reference, 3 seeds) | 1.0 ± 0.1 | 2.0 |",
    ]
