"""The digits benchmarks' bookkeeping: equal search budgets, seed statistics, the demo report.

The benchmarks themselves train for minutes to hours and are not run here; these tests check the
parts whose mistakes would silently change a published table.
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import subprocess
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


def test_every_resnet_method_gets_the_same_search() -> None:
    assert set(tune_digits.ORDER) == set(METHOD_CLASSES)
    for method in tune_digits.RESNET_METHODS:
        own, other = tune_digits.SHAPES[method]
        assert own != other and len(tune_digits.SHAPES[method]) == 2
        points = [p for shape in (own, other) for p in tune_digits.grid(method, shape)]
        assert len(points) == 8 and len({json.dumps(p, sort_keys=True) for p in points}) == 8
        lrs = sorted({p["lr"] for p in points})
        assert lrs == [round(tune_digits.BASE_LR[method] * f, 10) for f in tune_digits.LR_FACTORS]
        # Every searched key is a real constructor argument, and the shapes really differ.
        defaults = METHOD_CLASSES[method].hparam_defaults()
        assert all(key in defaults for p in points for key in p["hp"]), method
        assert tune_digits.head(method, own) != tune_digits.head(method, other)
    assert tune_digits.head("byol", "byol") == {
        "hidden_dim": 1024,
        "output_dim": 256,
        "pred_hidden_dim": 1024,
    }
    assert "proj_batch_norm" not in tune_digits.head("barlowtwins", "cim")
    # MEC keeps lamda = d / (m eps^2) across output widths.
    lamdas = {
        p["hp"]["eps_squared"] / p["hp"]["output_dim"]
        for s in ("mssl", "byol")
        for p in tune_digits.grid("mec", s)
    }
    assert lamdas == {64 / 1024, 512 / 1024}


def test_extra_points_step_beyond_the_end_of_the_best_or_halfway_inside() -> None:
    points = tune_digits.grid("corinfomax", "cim")  # lr 0.5, 1.5 x alpha 250, 1000

    def rows(scores: list[float], extra: tuple[dict, ...] = ()) -> list[dict]:
        pts = [*points, *extra]
        return [
            {"config": i, **p, **dict.fromkeys(digits_runs.PROBES, v)}
            for i, (p, v) in enumerate(zip(pts, scores, strict=True))
        ]

    cim = tune_digits.head("corinfomax", "cim")
    # Best at the upper lr: one step up, at the best point's weight.
    assert tune_digits.next_point(rows([90, 91, 89, 92])) == {
        "lr": 4.5,
        "hp": {**cim, "alpha": 1000.0},
    }
    # Best at the lower lr: one step down; a tie keeps the earlier run.
    low = tune_digits.next_point(rows([93, 93, 89, 92]))
    assert low == {"lr": round(0.5 / 3, 10), "hp": {**cim, "alpha": 250.0}}
    # Inside the lrs tried: halfway (geometric) towards the better neighbour.
    assert tune_digits.next_point(rows([93, 93, 89, 92, 91], (low,)))["lr"] == pytest.approx(
        (1.5 * 0.5) ** 0.5
    )
    assert tune_digits.next_point(rows([93, 93, 89, 92, 92.5], (low,)))["lr"] == pytest.approx(
        (0.5 / 3 * 0.5) ** 0.5
    )
    job = tune_digits.search_job("corinfomax", "cim", 4, low, 30, 0, Path("o"))
    assert job.out == Path("o/corinfomax/cim-cfg4") and job.tag["config"] == 4
    assert job.flags[-10:] == [
        *("--lr", "0.1666666667", "--hp", "hidden_dim=1024", "--hp", "output_dim=64"),
        *("--hp", "proj_batch_norm=False", "--hp", "alpha=250.0"),
    ]


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
    twin = {"lr": 1.0, "hp": {"output_dim": 256, "momentum_start": 0.99}}
    best.write_text(json.dumps({"best": {"vicreg": chosen}, "twins": {"mssl": {"byol": twin}}}))
    assert digits_runs.hp_flags(pretrain_digits.chosen_setting(best, "vicreg")) == [
        *("--lr", "0.9", "--hp", "lambda_param=10.0", "--hp", "mu_param=10.0"),
        *("--hp", "nu_param=1.0"),
    ]
    assert pretrain_digits.chosen_setting(best, "byol", "mssl") == twin
    assert digits_runs.hp_flags(pretrain_digits.chosen_setting(None, "vicreg")) == []
    with pytest.raises(SystemExit, match="mec"):
        pretrain_digits.chosen_setting(best, "mec")
    with pytest.raises(SystemExit, match="vicreg"):
        pretrain_digits.chosen_setting(best, "vicreg", "mssl")


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


def test_transfer_claims_read_box_ap_per_seed_from_the_transfer_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import claims

    def seeds(aps: list[float]) -> list[dict]:
        return [{"bbox": {"mAP": ap}, "segm": {"mAP": 0.0}} for ap in aps]

    raw = {
        "random init": seeds([0.03, 0.04, 0.035]),
        "matrix_ssl": seeds([0.15, 0.16, 0.17]),
        "byol": seeds([0.10, 0.11, 0.12]),
    }
    rows = claims.transfer_rows({"raw": raw})
    assert [r["AP_bb"] for r in rows if r["method"] == "matrix_ssl"] == pytest.approx([15, 16, 17])
    table = {r["claim"]: r for r in claims.claim_rows(rows, claims.TRANSFER_CLAIMS)}
    assert table["matrix_ssl > byol (shapes box AP)"]["holds"] == "holds"
    assert table["matrix_ssl > mec (shapes box AP)"]["holds"] == "missing"
    digits = tmp_path / "results.json"
    digits.write_text(json.dumps({"rows": [{"method": "mec", "linear_top1": 1.0}]}))
    transfer = tmp_path / "transfer.json"
    transfer.write_text(json.dumps({"raw": raw}))
    assert claims.main([str(digits), "--transfer", str(transfer)]) == 0
    out = capsys.readouterr().out
    assert "| matrix_ssl > byol (shapes box AP) |" in out
    assert "16.00 ± 1.00 vs 11.00 ± 1.00 | holds |" in out


def test_claims_merge_results_files_and_compare_each_method_with_its_random_init(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import claims

    def runs(method: str, values: list[float], backbone: str = "resnet18") -> list[dict]:
        return [
            {
                "method": method,
                "backbone": backbone,
                "seed": s,
                "linear_top1": v,
                "few_label_top1": v,
            }
            for s, v in enumerate(values)
        ]

    init = runs("random init", [90.0, 91.0, 92.0])
    best = tmp_path / "best.json"
    best.write_text(
        json.dumps(
            {
                "settings": {"best": "b.json"},
                "rows": init
                + runs("matrix_ssl", [95.0, 96.0, 97.0])
                + runs("byol", [80.0, 81.0, 82.0]),
            }
        )
    )
    twins = tmp_path / "twins.json"
    twins.write_text(
        json.dumps(
            {
                "settings": {"best": "b.json", "shape": "mssl"},
                "rows": init
                + runs("byol", [91.0, 92.0, 93.0])
                + runs("corinfomax", [99.0, 99.0, 99.0]),
            }
        )
    )
    rows = claims.merged_rows([twins, best], ["matrix_ssl", "byol"])
    assert {r["method"] for r in rows} == {"random init", "matrix_ssl", "byol"}
    assert [r["linear_top1"] for r in rows if r["method"] == "byol"] == [91.0, 92.0, 93.0]
    assert len([r for r in rows if r["method"] == "random init"]) == 3  # not doubled
    verdicts = {r["claim"]: r["holds"] for r in claims.init_rows(rows)}
    assert verdicts["matrix_ssl > its random init (linear)"] == "holds"  # 96 +- 1 vs 91 +- 1
    assert verdicts["byol > its random init (linear)"] == "not separated (above)"
    below = claims.init_rows(claims.merged_rows([best], None))
    assert {r["claim"]: r["holds"] for r in below}["byol > its random init (linear)"] == "BELOW"
    assert claims.main([str(twins), str(best), "--methods", "matrix_ssl", "byol"]) == 0
    out = capsys.readouterr().out
    assert "loss-isolating twins" in out and "| matrix_ssl > byol (linear) |" in out
    assert "corinfomax" not in out and "mmae" not in out  # neither run nor asked for


def _fake_row(job: digits_runs.Job) -> dict:
    scores = {"knn_top1": 90.0, "linear_top1": 95.0, "few_label_top1": 85.0}
    return {"method": job.method, "out": str(job.out), **job.tag, "before": scores, **scores}


def _grid_jobs(method: str, shape: str, epochs: int, out: Path) -> list[digits_runs.Job]:
    points = tune_digits.grid(method, shape)
    return [
        tune_digits.search_job(method, shape, i, p, epochs, 0, out) for i, p in enumerate(points)
    ]


def test_results_log_carries_finished_runs_to_a_fresh_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[str] = []

    def fake_run(job: digits_runs.Job, threads: int, log_dir: Path) -> dict:
        ran.append(job.key)
        return {**_fake_row(job), "train_wall_s": 1.0}

    monkeypatch.setattr(digits_runs, "run_job", fake_run)
    log = tmp_path / "results" / "log.jsonl"
    log.parent.mkdir()
    jobs = _grid_jobs("byol", "byol", 30, tmp_path / "old_checkout")
    # A row logged by an earlier checkout (other folder, no "run" key) is found by method/folder.
    log.write_text(json.dumps({**_fake_row(jobs[0]), "train_wall_s": 5.0}) + "\n")
    fresh = _grid_jobs("byol", "byol", 30, tmp_path / "new_checkout")
    rows = digits_runs.run_jobs(fresh, 2, tmp_path / "logs", results_log=log)
    assert sorted(ran) == ["byol/byol-cfg1", "byol/byol-cfg2", "byol/byol-cfg3"]
    assert [row["train_wall_s"] for row in rows] == [5.0, 1.0, 1.0, 1.0]
    assert sorted(digits_runs.read_log(log)) == [f"byol/byol-cfg{i}" for i in range(4)]
    ran.clear()
    digits_runs.run_jobs(fresh, 1, tmp_path / "logs", results_log=log)
    assert ran == []  # everything is logged now
    # The same folder name at another length is not silently reused.
    other = _grid_jobs("byol", "byol", 5, tmp_path / "new_checkout")
    with pytest.raises(SystemExit, match=r"byol/byol-cfg0.*epochs"):
        digits_runs.run_jobs(other, 1, tmp_path / "logs", results_log=log)
    assert ran == []


def test_search_resumes_and_chooses_each_method_and_twin_once_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[str] = []
    kill = [True]

    def fake_run(job: digits_runs.Job, threads: int, log_dir: Path) -> dict:
        if kill and job.tag["config"] == 2:  # the search is killed in every group's 3rd run
            raise RuntimeError("killed")
        ran.append(job.key)
        # lr 1 scores best, the BYOL-shaped heads 1 point more.
        value = 95.0 - abs(math.log(job.tag["lr"])) + (job.tag["shape"] == "byol")
        return {**_fake_row(job), **dict.fromkeys(digits_runs.PROBES, value), "train_wall_s": 1.0}

    monkeypatch.setattr(digits_runs, "run_job", fake_run)
    log = tmp_path / "results" / "log.jsonl"
    argv = ["tune_digits.py", "--methods", "byol", "mec", "--epochs", "30", "--threads", "1"]
    argv += ["--out", str(tmp_path / "runs"), "--log", str(log), "--parallel", "2"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(RuntimeError, match="killed"):
        tune_digits.main()
    # The first two searches start side by side, so either may log its first run first.
    assert len(digits_runs.read_log(log)) == 8
    assert set(ran[:2]) == {"byol/byol-cfg0", "mec/mssl-cfg0"}
    best = json.loads((tmp_path / "results" / "best.json").read_text())
    assert best["best"] == {} and best["pending"] == ["byol", "mec"]
    monkeypatch.setattr(sys, "argv", [*argv[:2], "byol", *argv[4:]])
    kill.clear()
    tune_digits.main()  # resumed: runs only what the log lacks
    rows = digits_runs.read_log(log)
    assert len(set(ran)) == len(ran) == len(rows) == 16
    # Extra points: each one lr step below the best so far (lr 1 is the best).
    assert [rows[f"byol/byol-cfg{i}"]["lr"] for i in (4, 5)] == [1.0, round(1 / 3, 10)]
    best = json.loads((tmp_path / "results" / "best.json").read_text())
    assert best["best"]["byol"]["lr"] == 1.0
    assert best["best"]["byol"]["hp"]["output_dim"] == 256
    assert set(best["twins"]) == {"byol", "mssl"} and best["pending"] == ["mec"]
    text = (tmp_path / "results" / "results.md").read_text()
    assert text.count("| yes |") == 1 and text.count("(extra)") == 4
    ran.clear()
    tune_digits.main()
    assert ran == []


def test_transfer_log_stands_in_for_missing_checkpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import transfer_demo

    calls: list[tuple[str, int]] = []

    def fake_run(checkpoint: Path | None, work_dir: Path, seed: int, extra: list[str]) -> dict:
        calls.append(("none" if checkpoint is None else checkpoint.name, seed))
        ap = 0.05 if checkpoint is None else 0.10 + seed / 100
        return {"bbox": {"mAP": ap, "AP50": 2 * ap}, "segm": {"mAP": ap}, "train_time_s": 60.0}

    monkeypatch.setattr(transfer_demo, "_run", fake_run)
    for seed in (0, 1):
        (tmp_path / f"s{seed}.ckpt").write_bytes(b"")
    log = tmp_path / "results" / "log.jsonl"
    argv = [str(tmp_path / "s{seed}.ckpt"), "--names", "ours", "--seeds", "0", "1"]
    argv += ["--out", str(tmp_path / "runs"), "--log", str(log), "--max-iters", "5"]
    monkeypatch.setattr(sys, "argv", ["transfer_demo.py", *argv])
    assert transfer_demo.main() == 0
    assert sorted(calls) == [("none", 0), ("none", 1), ("s0.ckpt", 0), ("s1.ckpt", 1)]
    first = (log.parent / "results.md").read_text()
    # A fresh checkout: no checkpoints, no run folders; the log gives the same table.
    calls.clear()
    for seed in (0, 1):
        (tmp_path / f"s{seed}.ckpt").unlink()
    argv[argv.index(str(tmp_path / "runs"))] = str(tmp_path / "runs2")
    monkeypatch.setattr(sys, "argv", ["transfer_demo.py", *argv])
    assert transfer_demo.main() == 0
    assert calls == []
    assert (log.parent / "results.md").read_text() == first
    # Other fine-tuning options are not mixed into the logged table.
    monkeypatch.setattr(sys, "argv", ["transfer_demo.py", *argv[:-1], "60"])
    with pytest.raises(SystemExit, match="another --log"):
        transfer_demo.main()


def test_demo_reference_names_the_probes_not_lifted_beyond_the_spreads(tmp_path: Path) -> None:
    import demo_reference

    runs = []
    for seed, (knn, linear) in enumerate([(95.0, 96.0), (95.5, 95.0), (96.0, 97.0)]):
        before = {"knn_top1": 92.0 + seed / 4, "linear_top1": 96.0, "few_label_top1": 85.0}
        scores = {"knn_top1": knn, "linear_top1": linear, "few_label_top1": 80.0}
        runs.append({"method": "matrix_ssl", "seed": seed, "before": before, **scores})
    digits, transfer = tmp_path / "digits", tmp_path / "transfer"
    digits.mkdir(), transfer.mkdir()
    settings = {"epochs": 30, "seeds": [0, 1, 2]}
    (digits / "results.json").write_text(json.dumps({"settings": settings, "rows": runs}))
    rows = [{"row": "random init", "seeds": 3, "AP_bb": "3.4 ± 0.8", "AP_mk": "5.7 ± 0.9"}]
    (transfer / "results.json").write_text(json.dumps({"rows": rows}))
    out = tmp_path / "reference.json"
    assert demo_reference.main([str(digits), str(transfer), str(out)]) == 0
    reference = json.loads(out.read_text())
    # kNN: +3.25 beyond the spreads; linear: +0 within them; few-label: a loss, never "lifted".
    assert reference["note"].endswith(
        "linear_top1, few_label_top1; README 'Pretraining on digits' has the numbers."
    )
    assert reference["probes"]["knn_top1"]["change"] == "3.25 ± 0.25"  # 3, 3.25, 3.5
    assert reference["epochs"] == 30 and reference["transfer"] == rows


def test_demo_reference_of_another_method_keeps_only_its_rows(tmp_path: Path) -> None:
    import demo_reference

    before = {"knn_top1": 92.0, "linear_top1": 95.0, "few_label_top1": 85.0}
    runs = [
        {"method": method, "seed": seed, "before": before, **dict.fromkeys(before, after + seed)}
        for method, after in (("matrix_ssl", 80.0), ("corinfomax", 97.0))
        for seed in range(3)
    ]
    digits, transfer = tmp_path / "digits", tmp_path / "transfer"
    digits.mkdir(), transfer.mkdir()
    (digits / "results.json").write_text(
        json.dumps({"settings": {"epochs": 20, "seeds": [0, 1, 2]}, "rows": runs})
    )

    def seeds(aps: list[float]) -> list[dict]:
        return [{"bbox": {"mAP": ap}, "segm": {"mAP": ap}} for ap in aps]

    names = ("random init", "matrix_ssl", "corinfomax")
    rows = [{"row": name, "seeds": 3, "AP_bb": "x", "AP_mk": "y"} for name in names]
    raw = {"random init": seeds([0.03, 0.04, 0.05]), "corinfomax": seeds([0.05, 0.1, 0.15])}
    (transfer / "results.json").write_text(json.dumps({"rows": rows, "raw": raw}))
    out = tmp_path / "reference.json"
    argv = [str(digits), str(transfer), str(out), "--method", "corinfomax"]
    assert demo_reference.main(argv) == 0
    reference = json.loads(out.read_text())
    assert reference["method"] == "corinfomax" and reference["label"] == "CorInfoMax"
    assert reference["probes"]["knn_top1"]["after"] == "98.00 ± 1.00"
    assert [r["row"] for r in reference["transfer"]] == ["random init", "corinfomax"]
    # 10 +- 5 vs 4 +- 1 AP: not beyond both spreads, and the note says so.
    assert reference["note"].startswith("Measured over 3 seeds, 20 epochs of CorInfoMax lift")
    assert reference["note"].endswith("not both beyond the spreads of random init.")
    assert demo_reference.transfer_lifted({"random init": seeds([0.03])}, "corinfomax") is None
    raw["corinfomax"] = seeds([0.15, 0.16, 0.17])
    assert demo_reference.transfer_lifted(raw, "corinfomax") is True
    with pytest.raises(SystemExit):  # argparse: not a demo method
        demo_reference.main([str(digits), str(transfer), str(out), "--method", "vicreg"])
    (digits / "results.json").write_text(
        json.dumps({"settings": {"epochs": 20, "seeds": [0]}, "rows": runs[3:]})
    )
    with pytest.raises(SystemExit, match="no matrix_ssl runs"):
        demo_reference.main([str(digits), str(transfer), str(out), "--method", "matrix_ssl"])


def test_demo_report_names_the_method_and_refuses_another_methods_reference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = [
        {"epoch": 0, "knn_top1": 93.0, "linear_top1": 95.5, "few_label_top1": 86.5},
        {"epoch": 20, "knn_top1": 97.0, "linear_top1": 98.0, "few_label_top1": 95.0},
    ]
    (tmp_path / "pretrain").mkdir()
    (tmp_path / "transfer").mkdir()
    metrics = {"run": {"method": "corinfomax"}, "history": history, "final": history[-1]}
    (tmp_path / "pretrain" / "metrics.json").write_text(json.dumps(metrics))
    (tmp_path / "transfer" / "results.json").write_text(
        json.dumps({"bbox": {"mAP": 0.2}, "segm": {"mAP": 0.3}})
    )
    probes = {k: {"change": "+4.00 ± 1.00"} for k, _ in demo_report.PROBES}
    ours = {"method": "corinfomax", "label": "CorInfoMax", "seeds": [0, 1, 2], "probes": probes}
    (tmp_path / "ours.json").write_text(json.dumps(ours))
    assert demo_report.main([str(tmp_path), str(tmp_path / "ours.json")]) == 0
    out = capsys.readouterr().out
    assert "before and after 20 epochs of CorInfoMax:" in out
    assert "| kNN top-1 | 93.00 | 97.00 | +4.00 | +4.00 ± 1.00 |" in out
    # A reference without "method" is Matrix-SSL's (the files before the field): not shown here.
    (tmp_path / "old.json").write_text(json.dumps({"seeds": [0], "probes": probes}))
    assert demo_report.main([str(tmp_path), str(tmp_path / "old.json")]) == 0
    out = capsys.readouterr().out
    assert "is the reference of matrix_ssl, not corinfomax: not shown" in out
    assert "+4.00 ± 1.00" not in out and "epochs of corinfomax:" in out
    # A reference of another length is not shown, and a missing one is named.
    (tmp_path / "30ep.json").write_text(json.dumps({**ours, "epochs": 30}))
    assert demo_report.main([str(tmp_path), str(tmp_path / "30ep.json")]) == 0
    out = capsys.readouterr().out
    assert "30ep.json was measured at 30 epochs, not 20: not shown" in out
    assert "+4.00 ± 1.00" not in out
    assert demo_report.main([str(tmp_path), str(tmp_path / "none.json")]) == 0
    assert "none.json does not exist" in capsys.readouterr().out


def test_demo_refuses_an_unknown_method_before_running_anything(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    env = {**os.environ, "DEMO_METHOD": "vicreg"}
    done = subprocess.run(
        ["bash", str(ROOT / "tools" / "demo.sh"), str(out)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "DEMO_METHOD=vicreg is not a demo method; use corinfomax or matrix_ssl" in done.stderr
    assert not out.exists()
    # Every demo method has its reference at its default length, beside the results it came from.
    script = (ROOT / "tools" / "demo.sh").read_text()
    defaults = re.findall(r"^\s+(\w+)\) NAME=.*DEFAULT_EPOCHS=(\d+)", script, re.M)
    assert sorted(method for method, _ in defaults) == ["corinfomax", "matrix_ssl"]
    for method, epochs in defaults:
        reference = ROOT / "benchmarks" / "results" / f"demo_reference-{method}-{epochs}ep.json"
        assert json.loads(reference.read_text())["method"] == method
        assert json.loads(reference.read_text())["epochs"] == int(epochs)
