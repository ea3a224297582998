"""The GPU suite's dry run: every stage runs with CPU-sized settings and writes its tables.

One run of ``benchmarks/gpu_suite.sh all --dry-run`` (tiny shapes, 1-2 steps) into a temporary
directory; the tests then check the JSON and Markdown it wrote: the rows and columns each table
must have, the dry-run marking, and that the timed losses compute the same values as the
straightforward reference forms.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.gpu import detection, loss_cost, pretrain_speed  # noqa: E402
from benchmarks.gpu.common import DRY_RUN_BANNER, ResultStore  # noqa: E402

pytestmark = pytest.mark.slow
STEMS = ("gpu_tests", "loss", "loss_compile", "pretrain", "stability", "mmdet", "summary")


def _suite(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "VENV": str(Path(sys.executable).parents[1])}
    return subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_suite.sh"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def _python(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gpu_suite")
    proc = _suite("all", "--dry-run", "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return out


def _load(out: Path, stem: str) -> dict:
    return json.loads((out / f"{stem}.json").read_text())


def _loss_cells(out: Path) -> dict:
    rows = _load(out, "loss")["rows"]
    return {(r["loss"], r["m"], r["d"], r["precision"]): r for r in rows if r.get("kind") is None}


def test_every_stage_writes_json_and_markdown_marked_dry_run(out):
    for stem in STEMS:
        assert (out / f"{stem}.json").is_file(), stem
        markdown = (out / f"{stem}.md").read_text()
        assert DRY_RUN_BANNER in markdown, stem
    for stem in STEMS[:-1]:
        data = _load(out, stem)
        assert data["mode"] == "dry-run" and data["complete"] is True, stem
        assert data["rows"] and all(r["mode"] == "dry-run" for r in data["rows"]), stem
    env = json.loads((out / "env.json").read_text())
    for key in ("device_name", "driver", "torch_cuda", "cudnn", "cpu_count", "versions"):
        assert key in env
    assert {"torch", "mmcv", "mmdet", "lightly"} <= set(env["versions"])


def test_loss_table_has_every_cell(out):
    data = _load(out, "loss")
    cells = _loss_cells(out)
    cfg = loss_cost.DRY
    expected = {
        (name, m, d, p)
        for name in loss_cost.LOSSES
        for m, d in cfg["sizes"]
        for p in ("fp32", "bf16")
    }
    assert set(cells) == expected
    for key in expected:
        row = cells[key]
        assert row["status"] in ("ok", "error"), key
        if row["status"] == "ok":
            assert row["median_ms"] > 0 and row["repeats"] == cfg["repeats"], key
            assert "peak_mib" in row and row["finite"], key
    for name in (*loss_cost.OURS, "barlowtwins", "vicreg"):
        for m, d in cfg["sizes"]:
            for precision in ("fp32", "bf16"):
                assert cells[(name, m, d, precision)]["status"] == "ok", (name, precision)
    profiles = [r for r in data["rows"] if r.get("kind") == "profile"]
    assert {r["loss"] for r in profiles} == {*loss_cost.OURS, "barlowtwins"}
    assert all(r["top_ops"] and 0 < r["top_ops"][0]["share"] <= 1 for r in profiles)
    markdown = (out / "loss.md").read_text()
    for label, _ in loss_cost.LOSSES.values():
        assert f"| {label} |" in markdown
    assert "| loss | family | m=32, d=64 |" in markdown
    assert "### Where the time goes" in markdown and "speed-up" in markdown


def test_timed_losses_equal_the_reference_forms(out):
    """Ours and the d x d forms are timed on the same inputs: their values must agree (fp32)."""
    cells = _loss_cells(out)
    for name, dense in loss_cost.DENSE_OF.items():
        for m, d in loss_cost.DRY["sizes"]:
            ours, ref = cells[(name, m, d, "fp32")], cells[(dense, m, d, "fp32")]
            assert ours["value"] == pytest.approx(ref["value"], rel=2e-3, abs=1e-4), (name, m, d)


def test_compiled_loss_rows(out):
    rows = _load(out, "loss_compile")["rows"]
    assert {r["loss"] for r in rows} == set(loss_cost.OURS)
    assert all(r["compiled"] and r["status"] == "ok" for r in rows)
    cfg = loss_cost.DRY
    assert len(rows) == len(loss_cost.OURS) * len(cfg["sizes"]) * len(cfg["compile_precisions"])


def test_pretrain_rows_columns_and_loss_share(out):
    rows = {r["method"]: r for r in _load(out, "pretrain")["rows"]}
    assert set(rows) == set(pretrain_speed.DRY["methods"])
    # criterion calls per training step, from each module's training_step
    calls = {"matrix_ssl": 2, "byol": 2, "corinfomax": 1, "barlowtwins": 1, "vicreg": 1, "mmae": 1}
    for method, row in rows.items():
        assert row["status"] == "ok", row
        assert row["images_per_s"] > 0 and row["step_ms"] > 0 and row["finite"]
        assert row["batch_size"] == 8
        assert row["precision"] == pretrain_speed.precision(pretrain_speed.DRY)
        if method in calls:
            assert row["loss_calls_per_step"] == calls[method], method
            assert 0 < row["loss_share"] < 1 and row["loss_fwd_bwd_ms"] > 0
        else:
            assert "loss_share" not in row  # MAE: no matrix term
    assert rows["mmae"]["backbone"].startswith("vit")
    assert rows["matrix_ssl"]["backbone"] == "resnet18"
    markdown = (out / "pretrain.md").read_text()
    for _, title in pretrain_speed.THROUGHPUT_COLUMNS:
        assert title in markdown
    assert markdown.count("| dry-run |") == len(rows)


def test_stability_rows(out):
    rows = {r["method"]: r for r in _load(out, "stability")["rows"]}
    assert set(rows) == set(pretrain_speed.DRY["stability_methods"])
    for row in rows.values():
        assert row["steps_run"] == row["steps_planned"] == 2
        assert row["no_nan"] is True and row["nonfinite_steps"] == 0 and row["params_finite"]


def test_mmdet_rows(out):
    rows = {(r["config"], r["amp"]): r for r in _load(out, "mmdet")["rows"]}
    assert set(rows) == {(c, a) for c in detection.DRY["configs"] for a in (False, True)}
    for config in detection.DRY["configs"]:
        fp32 = rows[(config, False)]
        assert fp32["status"] == "ok" and fp32["iters_per_s"] > 0 and fp32["finite"], fp32
        if not torch.cuda.is_available():
            assert rows[(config, True)]["status"] == "skipped"
    assert "| iterations/s |" in (out / "mmdet.md").read_text()


def test_summary_goals_have_pass_fail_columns(out):
    summary = _load(out, "summary")
    assert summary["dry_run"] is True
    goals = {(g["goal"].split(" ")[0], g["method"]): g for g in summary["goals"]}
    for method in ("matrix_ssl", "corinfomax", "mmae"):
        assert ("loss", method) in goals and ("no", method) in goals
    for method in ("matrix_ssl", "corinfomax"):
        assert goals[("throughput", method)]["measured"].endswith("x")
    for goal in summary["goals"]:
        assert set(goal) >= {"goal", "method", "measured", "target", "result", "mode"}
        if goal["goal"] != "pytest -m gpu passes" or torch.cuda.is_available():
            assert goal["result"].endswith("(dry run)"), goal
    assert (
        "| goal | method | measured | target | pass/fail | mode |"
        in (out / "summary.md").read_text()
    )
    tests = _load(out, "gpu_tests")["rows"][0]
    assert tests["exit_code"] == 0 and tests["failed"] == 0


def test_finished_rows_are_reused(out):
    before = _load(out, "mmdet")["rows"]
    proc = _python("mmdet", "--dry-run", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert _load(out, "mmdet")["rows"] == before


def test_budget_stops_a_stage_with_status_3(tmp_path):
    proc = _python("loss", "--dry-run", "--out", str(tmp_path), "--budget-s", "0")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    data = json.loads((tmp_path / "loss.json").read_text())
    assert data["complete"] is False and data["rows"] == []
    assert "run the same stage again" in proc.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a CPU machine")
def test_measurement_without_cuda_is_refused(tmp_path):
    proc = _python("pretrain", "--out", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "--dry-run" in proc.stderr


def test_dry_run_never_writes_into_the_measurement_directory():
    proc = _python("report", "--dry-run", "--out", "benchmarks/results/gpu_suite")
    assert proc.returncode == 2 and "holds measurements" in proc.stderr


def test_unknown_stage_is_refused():
    proc = _suite("warp-speed")
    assert proc.returncode == 2 and "unknown stage" in proc.stderr


def test_results_of_other_settings_are_kept_aside(tmp_path):
    env = {"device_name": "cpu"}
    store = ResultStore(tmp_path, "loss", {"a": 1}, env, dry_run=True)
    store.add({"key": "k", "value": 1.0})
    same = ResultStore(tmp_path, "loss", {"a": 1}, env, dry_run=True)
    assert same.get("k") == {"mode": "dry-run", "key": "k", "value": 1.0}
    other = ResultStore(tmp_path, "loss", {"a": 2}, env, dry_run=True)
    assert other.rows == []
    kept = [p for p in tmp_path.glob("loss-*.json")]
    assert len(kept) == 1 and json.loads(kept[0].read_text())["rows"][0]["value"] == 1.0
