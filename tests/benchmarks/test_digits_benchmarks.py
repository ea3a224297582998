"""The digits benchmarks' bookkeeping: equal search budgets, seed statistics, the demo report.

The benchmarks themselves train for minutes to hours and are not run here; these tests check the
parts whose mistakes would silently change a published table.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tools"))

import demo_report  # noqa: E402
import digits_runs  # noqa: E402
import tune_digits  # noqa: E402

from lightly_matrix.methods import METHOD_CLASSES  # noqa: E402
from lightly_matrix.pretrain.config import module_defaults  # noqa: E402


def test_every_method_gets_the_same_search_budget() -> None:
    sizes = {method: len(tune_digits.grid(method)) for method in tune_digits.ORDER}
    assert set(tune_digits.ORDER) == set(METHOD_CLASSES)
    assert len(set(sizes.values())) == 1, sizes
    for method in tune_digits.ORDER:
        points = tune_digits.grid(method)
        lrs = sorted({round(p["lr"], 12) for p in points})
        base = tune_digits.base_lr(method)
        assert lrs == sorted(round(base * f, 12) for f in tune_digits.LR_FACTORS)
        # Every searched key is a real constructor argument of the method.
        defaults = module_defaults(METHOD_CLASSES[method])
        assert all(key in defaults for p in points for key in p["hp"]), method
        assert len({json.dumps(p, sort_keys=True) for p in points}) == len(points)


def test_selection_is_the_mean_of_the_three_probes() -> None:
    row = {"knn_top1": 90.0, "linear_top1": 96.0, "few_label_top1": 84.0}
    assert tune_digits.score(row) == pytest.approx(90.0)


def test_mean_std_and_separation() -> None:
    values = [97.0, 97.5, 96.5]
    assert digits_runs.mean_std(values) == pytest.approx((97.0, statistics.stdev(values)))
    assert digits_runs.fmt(values) == "97.00 ± 0.50"
    assert digits_runs.fmt([91.25]) == "91.25"
    assert digits_runs.separated([90.0, 90.5, 89.5], [92.0, 92.5, 91.5])  # 2.0 > 0.5 + 0.5
    assert not digits_runs.separated([90.0, 91.0, 89.0], [91.5, 92.5, 90.5])  # 1.5 < 1 + 1
    assert not digits_runs.separated([90.0, 90.0, 90.0], [90.0, 90.0, 90.0])


def test_demo_report_prints_before_and_after(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = [
        {"epoch": 0, "knn_top1": 93.0, "linear_top1": 95.5, "few_label_top1": 86.5},
        {"epoch": 5, "knn_top1": 85.0, "linear_top1": 93.0, "few_label_top1": 80.0},
    ]
    (tmp_path / "pretrain").mkdir()
    (tmp_path / "transfer").mkdir()
    (tmp_path / "pretrain" / "metrics.json").write_text(
        json.dumps({"history": history, "final": history[-1]})
    )
    (tmp_path / "transfer" / "results.json").write_text(
        json.dumps({"bbox": {"mAP": 0.412}, "segm": {"mAP": 0.455}})
    )
    reference = {
        "seeds": [0, 1, 2],
        "probes": {k: {"change": "-8.00 ± 1.00"} for k, _ in demo_report.PROBES},
        "transfer": [{"row": "random init", "seeds": 3, "AP_bb": "10.0 ± 1.0", "AP_mk": "9 ± 1"}],
    }
    (tmp_path / "ref.json").write_text(json.dumps(reference))
    assert demo_report.main([str(tmp_path), str(tmp_path / "ref.json")]) == 0
    out = capsys.readouterr().out
    assert "| kNN top-1 | 93.00 | 85.00 | -8.00 | -8.00 ± 1.00 |" in out
    assert "| this run's export | 41.2 | 45.5 |" in out
    assert "| random init (reference, 3 seeds) | 10.0 ± 1.0 | 9 ± 1 |" in out
    # Without a reference file the run's own numbers are still printed.
    assert demo_report.main([str(tmp_path), str(tmp_path / "missing.json")]) == 0
    assert "| linear top-1 | 95.50 | 93.00 | -2.50 |" in capsys.readouterr().out


def test_seed_summary_pairs_each_method_with_its_random_init() -> None:
    import pretrain_digits

    runs = []
    for seed, (before, after) in enumerate([(93.0, 96.0), (92.0, 95.5), (94.0, 96.5)]):
        scores = {"knn_top1": after, "linear_top1": before - 1, "few_label_top1": before}
        initial = {"knn_top1": before, "linear_top1": before, "few_label_top1": before}
        for method in ("matrix_ssl", "corinfomax"):
            runs.append(
                {
                    "method": method,
                    "backbone": "resnet18",
                    "seed": seed,
                    "out": f"{method}/seed{seed}",
                    "before": initial,
                    "train_wall_s": 100.0,
                    **scores,
                }
            )
    random = pretrain_digits.random_init_rows(runs)
    assert [(r["seed"], r["knn_top1"]) for r in random] == [(0, 93.0), (1, 92.0), (2, 94.0)]
    summary = {row["method"]: row for row in pretrain_digits.summarise(runs + random)}
    ours = summary["matrix_ssl"]
    assert ours["seeds"] == 3 and ours["knn_top1"] == "96.00 ± 0.50"
    # kNN: +3.00 with spreads 0.5 and 1.0, separated; linear: -1.00 within 1.0 + 1.0, not marked.
    assert ours["knn_top1_gain"] == "+3.00*" and ours["linear_top1_gain"] == "-1.00"
    assert "knn_top1_gain" not in summary["random init"]


def test_seeded_runs_take_the_setting_the_validation_search_chose(tmp_path: Path) -> None:
    import pretrain_digits

    best = tmp_path / "best.json"
    chosen = {"lr": 0.9, "hp": {"lambda_param": 10.0, "mu_param": 10.0, "nu_param": 1.0}}
    best.write_text(json.dumps({"best": {"vicreg": chosen}}))
    assert pretrain_digits.chosen_flags(best, "vicreg") == [
        *("--lr", "0.9", "--hp", "lambda_param=10", "--hp", "mu_param=10"),
        *("--hp", "nu_param=1"),
    ]
    assert pretrain_digits.chosen_flags(None, "vicreg") == []
    with pytest.raises(SystemExit, match="mec"):
        pretrain_digits.chosen_flags(best, "mec")


def test_claims_table_calls_a_claim_only_when_the_seeds_separate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import claims

    def runs(method: str, values: list[float]) -> list[dict]:
        return [{"method": method, "linear_top1": v} for v in values]

    rows = runs("matrix_ssl", [90.0, 91.0, 92.0]) + runs("mec", [80.0, 81.0, 82.0])
    rows += runs("byol", [91.0, 92.0, 93.0]) + runs("corinfomax", [70.0, 71.0, 72.0])
    rows += runs("barlowtwins", [70.5, 71.0, 71.5]) + runs("vicreg", [80.0, 80.0, 80.0])
    table = {row["claim"].split(" (")[0]: row for row in claims.claim_rows(rows)}
    assert table["matrix_ssl > mec"]["holds"] == "holds"  # 91 +- 1 vs 81 +- 1
    assert table["matrix_ssl > byol"]["holds"] == "not separated"  # 91 +- 1 vs 92 +- 1
    assert table["corinfomax >= barlowtwins"]["holds"] == "holds"  # within the spreads
    assert table["corinfomax >= vicreg"]["holds"] == "reversed"
    assert table["mmae > umae"]["holds"] == "missing"
    assert table["matrix_ssl > mec"]["measured"] == "91.00 ± 1.00 vs 81.00 ± 1.00"
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"settings": {"epochs": 30, "seeds": [0, 1, 2]}, "rows": rows}))
    assert claims.main([str(results)]) == 0
    out = capsys.readouterr().out
    assert "| matrix_ssl > mec (linear) |" in out and "| holds |" in out
