"""What the report shows of a pretraining run: settings, probes, feature spectrum, curves."""

from __future__ import annotations

import itertools
from typing import Any

from lightly_matrix.report.data import METRICS_FILE, SPECTRUM_FILE, PretrainRun, parse_spread
from lightly_matrix.report.figures import BELOW, BESIDE, Panel, Series, draw_curves, draw_panels
from lightly_matrix.report.html import Section, settings, table

#: metrics.json keys of the frozen-backbone probes, with their names in the report.
PROBES = (("knn_top1", "kNN"), ("linear_top1", "linear"), ("few_label_top1", "10 labels/class"))
LOSSES = ("train_loss", "train_pixel_loss", "train_regularizer")
#: Why a method's logs may lack a panel's values.
WHY_NOT_LOGGED = {
    "Teacher momentum": "only methods with an EMA teacher log it",
    "Online linear probe": "the data have no labels",
}
#: Eigenvalue shares below this are numerically zero.
ZERO_SHARE = 1e-12
NO_METRICS = "no metrics.json: the run used --no-eval or stopped before its first evaluation"


def _unreadable_or(run: PretrainRun, name: str, absent: str) -> str:
    """Why ``name`` gave nothing: the problem noted when reading it, else ``absent``."""
    noted = [p.split(": ", 1)[1] for p in run.problems if p.startswith(f"{name}: ")]
    return f"{name} is unreadable ({noted[0]})" if noted else absent


def run_section(run: PretrainRun) -> Section:
    """The run's settings (``metrics.json``'s ``run``) and where it lives."""
    section = Section("Pretraining run")
    section.text(f"Run folder: {run.path.resolve()}", "meta")
    info = (run.metrics or {}).get("run") or {}
    if not info:
        why = _unreadable_or(run, METRICS_FILE, NO_METRICS)
        return section.figure("Settings", None, "the run's settings", why)
    # The run's record as saved (RunConfig.record), less the record's version and the hparams.
    shown = [k for k, v in info.items() if k != "format" and not isinstance(v, dict | list)]
    section.add(settings(info, shown))
    if "train_wall_s" not in info:  # written when training ends (pretrain/run.py)
        last = ((run.metrics or {}).get("final") or {}).get("epoch", "-")
        section.text(
            f"Not finished: stopped or still running (last evaluation after epoch {last} of"
            f" {info.get('epochs', '?')}); the figures show what it saved so far. Resume with"
            " lightly-matrix pretrain --resume RUN.",
            "na",
        )
    return section


def _reference_series(reference: dict[str, Any], key: str, name: str, color: Any) -> list[Series]:
    spread = (reference.get("probes") or {}).get(key) or {}
    before, after = parse_spread(spread.get("before")), parse_spread(spread.get("after"))
    points = [(0, before)] if before else []
    if after and reference.get("epochs"):
        points.append((reference["epochs"], after))
    seeds = len(reference.get("seeds") or [])
    what = f"{reference.get('label', 'reference')} {reference.get('epochs', '?')} epochs"
    label = f"{name}, {what} mean ± std" + (f" of {seeds} seeds" if seeds else "")
    x, y, yerr = [p[0] for p in points], [p[1][0] for p in points], [p[1][1] for p in points]
    return [Series(label, x, y, yerr, fmt="s", color=color, alpha=0.45)] if points else []


def probe_section(run: PretrainRun, reference: dict[str, Any] | None) -> Section:
    """The frozen-backbone probe table and their top-1 over the evaluated epochs."""
    section = Section("Frozen-backbone probes")
    history = (run.metrics or {}).get("history") or []
    if not history:
        why = _unreadable_or(run, METRICS_FILE, NO_METRICS)
        why = why if run.metrics is None else "metrics.json holds no evaluation"
        return section.figure("Probe table", None, "the probe table and chart", why)
    info = (run.metrics or {}).get("run") or {}
    section.text(
        f"Top-1 accuracy (%) of probes on the frozen online backbone, scored on the "
        f"{info.get('eval_split', 'test')} split; epoch 0 is the random initialisation."
    )
    rows: list[list[Any]] = [
        [f"{r['epoch']} (random init)" if r["epoch"] == 0 else r["epoch"], r.get("step"),
         *(r.get(key) for key, _ in PROBES), r.get("eval_s")]
        for r in history
    ]  # fmt: skip
    first, last = history[0], history[-1]
    if first["epoch"] == 0 and last["epoch"] > 0:
        change = [last[k] - first[k] if k in last and k in first else None for k, _ in PROBES]
        rows.append([f"change 0 -> {last['epoch']}", None, *change, None])
    headers = ["epoch", "step", *(f"{name} top-1 (%)" for _, name in PROBES), "eval time (s)"]
    section.add(table(headers, rows))
    series = []
    for index, (key, name) in enumerate(PROBES):
        color = f"C{index}"
        points = [(row["epoch"], row[key]) for row in history if key in row]
        series.append(Series(name, [p[0] for p in points], [p[1] for p in points], color=color))
        series += _reference_series(reference, key, name, color) if reference else []
    panel = Panel("Frozen-backbone probes", "epoch (0 = random init)", "top-1 accuracy (%)",
                  series, integer_x=True, legend=BESIDE)  # fmt: skip
    section.figure("Probe accuracy over training", draw_panels([panel], size=(10.0, 4.4)), "", "")
    return section


def _share(eigenvalues: list[float]) -> list[float]:
    total = sum(eigenvalues)
    return [v / total for v in eigenvalues] if total > 0 else []


def spectrum_section(run: PretrainRun) -> Section:
    """The covariance spectrum of the backbone features per evaluation, effective rank marked."""
    section = Section("Eigenvalue spectrum of the backbone features")
    spectra = [e for e in run.spectra if _share(e["eigenvalues"])]
    if not spectra:
        absent = "no spectrum.json: the run predates saved spectra or ran with --no-eval"
        if (run.path / SPECTRUM_FILE).exists():
            absent = "spectrum.json holds no evaluation"
        why = _unreadable_or(run, SPECTRUM_FILE, absent)
        return section.figure("Spectrum", None, "the eigenvalue spectrum", why)
    first = spectra[0]
    section.text(
        f"Eigenvalues of the covariance of the frozen backbone's {first['feature_dim']}-d features"
        f" on the {first['num_images']} probe training images, as shares of their sum (log scale;"
        f" below {ZERO_SHARE:g} not drawn). A spectrum that drops after a few components is"
        " collapse. Dashed: effective rank (exp of the entropy of the normalised singular values)."
    )
    spectrum, cumulative, marks, rows = [], [], [], []
    for index, evaluation in enumerate(spectra):
        epoch, rank = evaluation["epoch"], evaluation["effective_rank"]
        label = "random init (epoch 0)" if epoch == 0 else f"epoch {epoch}"
        # Random init grey, the last evaluation red and bold, those between thin.
        bold = index in (0, len(spectra) - 1)
        color = "C7" if epoch == 0 else ("C3" if index == len(spectra) - 1 else f"C{index % 6}")
        width, alpha = (2, 1.0) if bold else (1, 0.5)
        style: dict[str, Any] = dict(color=color, alpha=alpha, linewidth=width)
        share = _share(evaluation["eigenvalues"])
        cumulated = [100.0 * total for total in itertools.accumulate(share)]
        drawn = [(i + 1, v) for i, v in enumerate(share) if v > ZERO_SHARE]
        fmt = "-" if len(drawn) > 2 else "-o"  # a collapsed spectrum is one or two points
        spectrum.append(Series(label, [p[0] for p in drawn], [p[1] for p in drawn], fmt=fmt,
                               **style))  # fmt: skip
        cumulative.append(Series(label, range(1, len(share) + 1), cumulated, fmt="-", **style))
        marks.append((rank, f"effective rank, {label}: {rank:.1f}", color))
        for_90 = next((i + 1 for i, c in enumerate(cumulated) if c >= 90), len(share))
        rows.append((epoch, rank, evaluation.get("matrix_entropy"), 100 * share[0], for_90))
    panels = [
        Panel("Covariance spectrum", "component (sorted by eigenvalue)",
              "eigenvalue / sum of eigenvalues", spectrum, logy=True, vlines=marks,
              legend=BELOW),
        Panel("Cumulative variance", "number of components", "variance explained (%)",
              cumulative, vlines=marks, legend=BELOW),
    ]  # fmt: skip
    png = draw_panels(panels, size=(5.6, 4.8))
    section.figure("Spectrum at random init and after training", png, "", "")
    headers = ("epoch", "effective rank", "matrix entropy (nats)", "top eigenvalue share (%)",
               "components for 90% of variance")  # fmt: skip
    section.add(table(headers, rows))
    return section


def curves_section(run: PretrainRun) -> Section:
    """Training curves from Lightning's CSV logs."""
    section = Section("Training curves")
    if not run.curves:
        why = "no csv/version_*/metrics.csv in the run folder"
        return section.figure("Curves", None, "the training curves", why)
    # fmt: off
    losses = [(f"{n}_step", f"{n} (per step)", "-") for n in LOSSES] + [
        (f"{n}_epoch", f"{n} (epoch mean)", "o") for n in LOSSES
    ]
    lrs = [(c, c.split("/", 1)[-1], "-") for c in sorted(run.curves) if c.startswith("lr-")]
    probe = [("train_online_cls_top1", "train batches", "-"),
             ("val_online_cls_top1", "validation", "-o")]
    parts = ("backbone", "projection")
    specs = [
        ("Training loss", "loss", losses, False, 1.0),
        ("Learning rate", "learning rate", lrs, False, 1.0),
        ("Teacher momentum", "EMA momentum", [("momentum", "", "-")], False, 1.0),
        ("Online linear probe", "top-1 accuracy (%)", probe, False, 100.0),
        ("Effective rank of the last training batch", "effective rank",
         [(f"diag/{p}_effective_rank", p, "-o") for p in parts], True, 1.0),
        ("Matrix entropy of the last training batch", "matrix entropy (nats)",
         [(f"diag/{p}_matrix_entropy", p, "-o") for p in parts], True, 1.0),
    ]
    # fmt: on
    png, titles = draw_curves(run.curves, specs)
    missing = [
        f"{t.lower()} ({WHY_NOT_LOGGED[t]})" if t in WHY_NOT_LOGGED else t.lower() for t in titles
    ]
    section.text(
        "From csv/version_*/metrics.csv (a resumed run's versions joined). Effective rank and"
        " matrix entropy: of each epoch's last training batch, backbone features and projections."
    )
    section.figure("Loss, schedules, online probe and collapse diagnostics", png,
                   "the training curves", "nothing the report draws was logged")  # fmt: skip
    if png and missing:
        section.missing += [f"{what}: not in the logs" for what in missing]
        section.text("Not in the logs: " + "; ".join(missing) + ".", "na")
    return section
