"""The summary: stage status, the goals with pass/fail, and every stage's tables in one file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.gpu.common import DRY_RUN_BANNER, environment_line, markdown_table, now

#: (file stem, title) in the order the summary shows them.
STAGES = (
    ("gpu_tests", "pytest -m gpu"),
    ("loss", "loss cost"),
    ("loss_compile", "loss cost, torch.compile"),
    ("pretrain", "pretraining throughput"),
    ("stability", "bf16-mixed stability"),
    ("mmdet", "Mask R-CNN speed"),
)
LOSS_SHARE_MAX = 0.05
THROUGHPUT_MIN = 0.95
GOAL_COLUMNS = (
    ("goal", "goal"),
    ("method", "method"),
    ("measured", "measured"),
    ("target", "target"),
    ("result", "pass/fail"),
    ("mode", "mode"),
)


def _load(out_dir: Path, stem: str) -> dict[str, Any] | None:
    path = out_dir / f"{stem}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _verdict(ok: bool | None, dry_run: bool) -> str:
    if ok is None:
        return "not measured"
    word = "PASS" if ok else "FAIL"
    return f"{word} (dry run)" if dry_run else word


def goals(stages: dict[str, dict[str, Any] | None]) -> list[dict[str, Any]]:
    """One row per (goal, method), with the measured value and pass/fail."""
    rows: list[dict[str, Any]] = []
    pretrain = stages.get("pretrain") or {"rows": []}
    by_method = {r["method"]: r for r in pretrain["rows"] if r.get("status") == "ok"}
    mode = pretrain.get("mode", "-")
    dry = mode == "dry-run"
    for method in ("matrix_ssl", "corinfomax", "mmae"):
        r = by_method.get(method, {})
        share = r.get("loss_share")
        step = f"{r.get('backbone', 'ResNet-50')} {r.get('precision', 'bf16-mixed')}"
        rows.append(
            {
                "goal": f"loss fwd+bwd <= 5% of a {step} step",
                "method": method,
                "measured": None if share is None else f"{100 * share:.2f}%",
                "target": "<= 5%",
                "result": _verdict(None if share is None else share <= LOSS_SHARE_MAX, dry),
                "mode": mode if share is not None else "-",
            }
        )
    bt = by_method.get("barlowtwins")
    for method in ("matrix_ssl", "corinfomax"):
        r = by_method.get(method)
        ratio = r["images_per_s"] / bt["images_per_s"] if r and bt else None
        rows.append(
            {
                "goal": "throughput within 5% of Barlow Twins (same harness)",
                "method": method,
                "measured": None if ratio is None else f"{ratio:.3f}x",
                "target": ">= 0.95x",
                "result": _verdict(None if ratio is None else ratio >= THROUGHPUT_MIN, dry),
                "mode": mode if ratio is not None else "-",
            }
        )
    stability = stages.get("stability") or {"rows": [], "settings": {}}
    planned = stability.get("settings", {}).get("stability_steps", "N")
    for r in stability["rows"]:
        rows.append(
            {
                "goal": f"no NaN in {r.get('precision', 'bf16-mixed')} for {planned} steps",
                "method": r["method"],
                "measured": f"{r.get('steps_run', 0)} steps, {r.get('nonfinite_steps', '?')} "
                "non-finite"
                if r.get("status") == "ok"
                else r.get("error"),
                "target": "0 non-finite",
                "result": _verdict(bool(r.get("no_nan")), stability.get("mode") == "dry-run"),
                "mode": stability.get("mode"),
            }
        )
    tests = stages.get("gpu_tests")
    if tests and tests["rows"]:
        t = tests["rows"][0]
        ran = t.get("passed", 0) + t.get("failed", 0) + t.get("errors", 0)
        rows.append(
            {
                "goal": "pytest -m gpu passes",
                "method": "-",
                "measured": f"{t.get('passed', 0)} passed, {t.get('failed', 0)} failed, "
                f"{t.get('errors', 0)} errors, {t.get('skipped', 0)} skipped",
                "target": "0 failed, > 0 ran",
                "result": _verdict(
                    None if ran == 0 else t.get("failed", 0) + t.get("errors", 0) == 0,
                    tests.get("mode") == "dry-run",
                ),
                "mode": tests.get("mode"),
            }
        )
    return rows


def write(out_dir: Path) -> Path:
    """Writes ``summary.json`` and ``summary.md`` from whatever stages have results."""
    out_dir = Path(out_dir)
    stages = {stem: _load(out_dir, stem) for stem, _ in STAGES}
    present = {k: v for k, v in stages.items() if v is not None}
    dry = any(v.get("mode") == "dry-run" for v in present.values())
    status = [
        {
            "stage": title,
            "file": f"{stem}.json",
            "mode": data.get("mode") if data else "-",
            "rows": len(data["rows"]) if data else 0,
            "complete": data.get("complete") if data else None,
            "updated": data.get("updated") if data else "not run",
        }
        for stem, title in STAGES
        for data in [stages[stem]]
    ]
    goal_rows = goals(stages)
    summary = {"written": now(), "dry_run": dry, "stages": status, "goals": goal_rows}
    env = next((v["env"] for v in present.values() if "env" in v), None)
    if env is not None:
        summary["env"] = env
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    lines = ["# GPU suite summary", ""]
    if dry:
        lines += [DRY_RUN_BANNER, ""]
    if env is not None:
        lines += [environment_line(env), ""]
    lines += [
        "## Stages",
        "",
        markdown_table([(k, k) for k in ("stage", "mode", "rows", "complete", "updated")], status),
        "",
        "## Goals",
        "",
        markdown_table(GOAL_COLUMNS, goal_rows),
        "",
    ]
    for stem, _ in STAGES:
        md = out_dir / f"{stem}.md"
        if md.exists():
            lines += [md.read_text().rstrip(), ""]
    path = out_dir / "summary.md"
    path.write_text("\n".join(lines))
    return path


def print_goals(out_dir: Path) -> None:
    data = json.loads((Path(out_dir) / "summary.json").read_text())
    print(markdown_table(GOAL_COLUMNS, data["goals"]))
