"""The GPU suite's dry run: every table's script runs on the CPU at tiny sizes and writes its
JSON and Markdown; the tests check what they hold (and that the timed losses compute what the
straightforward reference forms compute)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks import bench_losses  # noqa: E402
from benchmarks.gpu import common  # noqa: E402

TABLES = (
    "gpu_tests",
    "bench_losses-cpu",
    "train_step-resnet18",
    "train_step-vit_tiny_patch16_224",
    "maskrcnn",
)


def _suite(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "benchmarks.gpu", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gpu_suite")
    proc = _suite("--dry-run", "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return out


def _rows(out: Path, table: str) -> list[dict]:
    return json.loads((out / f"{table}.json").read_text())["rows"]


@pytest.mark.slow
def test_every_table_is_written_as_json_and_markdown_marked_dry_run(out: Path) -> None:
    for table in TABLES:
        data = json.loads((out / f"{table}.json").read_text())
        assert data["dry_run"] is True and data["rows"], table
        assert {"device", "driver", "cuda", "torch", "lightly", "mmdet"} <= set(data["env"])
        assert common.DRY_RUN_BANNER in (out / f"{table}.md").read_text(), table
    assert "PyTorch version" in (out / "env.txt").read_text()
    (tests,) = _rows(out, "gpu_tests")
    assert tests["exit_code"] == 0 and tests["failures"] == tests["errors"] == 0
    assert tests["tests"] > 0


@pytest.mark.slow
def test_loss_table_has_every_cell_and_ours_equal_the_reference_forms(out: Path) -> None:
    cells = {(r["loss"], r["precision"]): r for r in _rows(out, "bench_losses-cpu")}
    dense = {name for name in bench_losses.LOSSES if name.endswith("_dense")}
    expected = {(n, p) for n in bench_losses.LOSSES for p in ("fp32", "bf16")}
    assert set(cells) == expected - {(n, "bf16") for n in dense}
    for (name, precision), row in cells.items():
        assert (row["m"], row["d"]) == (32, 64)
        if name not in dense or precision == "fp32":
            assert row["status"] == "ok" and row["median_ms"] > 0 and row["runs"] >= 1, row
    for ours, reference in bench_losses.DENSE.items():
        if ours != "matrix_ssl_exact":  # the exact log differs from the Taylor reference
            expected_value = cells[(reference, "fp32")]["value"]
            assert cells[(ours, "fp32")]["value"] == pytest.approx(expected_value, rel=2e-3)
    markdown = (out / "bench_losses-cpu.md").read_text()
    assert all(f"| {label} |" in markdown for label in bench_losses.LOSSES.values())
    assert "faster than d x d" in markdown and "| loss | m=32, d=64 |" in markdown


@pytest.mark.slow
def test_training_step_rows_have_throughput_memory_and_the_loss_share(out: Path) -> None:
    rows = {r["method"]: r for r in _rows(out, "train_step-resnet18")}
    rows.update({r["method"]: r for r in _rows(out, "train_step-vit_tiny_patch16_224")})
    calls = {"matrix_ssl": 2, "byol": 2, "corinfomax": 1, "barlowtwins": 1, "mmae": 1}
    assert set(rows) == {*calls, "mae"}
    for method, row in rows.items():
        assert row["status"] == "ok" and row["images_per_s"] > 0 and row["step_ms"] > 0, row
        assert row["peak_gib"] is None or row["peak_gib"] > 0
        assert row["views"] == (1 if method in ("mmae", "mae") else 2)
        if method in calls:
            assert row["loss_calls"] == calls[method], method
            assert row["loss_ms"] > 0 and 0 < row["loss_share_pct"] < 100
    assert "loss_calls" not in rows["mae"]  # no criterion: the pixel loss only
    assert rows["byol"]["vs_byol"] == 1.0 and rows["mmae"]["vs_mae"] > 0
    markdown = (out / "train_step-resnet18.md").read_text()
    assert "| loss share of step (%) |" in markdown and "images/s vs barlowtwins" in markdown


@pytest.mark.slow
def test_maskrcnn_trains_from_the_exported_backbone(out: Path) -> None:
    (row,) = _rows(out, "maskrcnn")
    assert row["status"] == "ok" and row["config"] == "mask-rcnn_r18_fpn_ms-1x_coco", row
    assert row["iter_ms"] > 0 and torch.isfinite(torch.tensor(row["loss"]))
    assert "| iteration (ms, median) |" in (out / "maskrcnn.md").read_text()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a CPU machine")
def test_a_measurement_without_cuda_is_refused_in_one_line(tmp_path: Path) -> None:
    proc = _suite("--out", str(tmp_path), timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "--dry-run" in proc.stderr and not list(tmp_path.iterdir())


def test_a_dry_run_never_writes_into_the_measurements(capsys: pytest.CaptureFixture) -> None:
    args = argparse.Namespace(dry_run=True, out=common.DEFAULT_OUT)
    with pytest.raises(SystemExit):
        common.resolve(args)
    assert "does not write into" in capsys.readouterr().err


def test_an_earlier_result_is_kept_not_overwritten(tmp_path: Path) -> None:
    args = argparse.Namespace(dry_run=True, out=tmp_path)
    for value in (1.0, 2.0, 3.0):
        common.write(args, "t", "T", [{"v": value}], f"| {value} |", "cpu")
    values = sorted(json.loads(p.read_text())["rows"][0]["v"] for p in tmp_path.glob("t*.json"))
    assert values == [1.0, 2.0, 3.0] and len(list(tmp_path.glob("t*.md"))) == 3
    assert json.loads((tmp_path / "t.json").read_text())["rows"] == [{"v": 3.0}]
