"""What the report shows of a pretraining run: settings, probes, spectrum, training curves.

Each function turns saved data (:mod:`lightly_matrix.report.data`) into a
:class:`~lightly_matrix.report.html.Section`; a figure whose data is missing becomes a
not-available notice that says which file or logged value was absent.
"""

from __future__ import annotations

from typing import Any

from lightly_matrix.report.data import Curve, PretrainRun, parse_spread
from lightly_matrix.report.figures import Panel, Series, draw_panels
from lightly_matrix.report.html import Section, paragraph, table

#: metrics.json keys of the frozen-backbone probes, with their names in the report.
PROBES = (
    ("knn_top1", "kNN"),
    ("linear_top1", "linear"),
    ("few_label_top1", "10 labels/class"),
)
#: Run settings shown at the top, from metrics.json's ``run``.
RUN_KEYS = (
    "method", "data", "backbone", "epochs", "batch_size", "optimizer", "lr", "weight_decay",
    "image_size", "precision", "seed", "eval_split", "train_wall_s",
)  # fmt: skip
#: Losses the methods log (``*_step`` per step, ``*_epoch`` per epoch).
LOSSES = ("train_loss", "train_pixel_loss", "train_regularizer")
NO_METRICS = "no metrics.json: the run was made with --no-eval or stopped before its first evaluation"


def run_section(run: PretrainRun) -> Section:
    """The run's settings (``metrics.json``'s ``run``) and where it lives."""
    section = Section("Pretraining run")
    section.add(paragraph(f"Run folder: {run.path.resolve()}", "meta"))
    info = (run.metrics or {}).get("run") or {}
    if not info:
        section.lack("Settings", "the run's settings", NO_METRICS)
        return section
    rows = [(key.replace("_", " "), info[key]) for key in RUN_KEYS if info.get(key) is not None]
    section.add(table(("setting", "value"), [(k, str(v)) for k, v in rows], css="kv"))
    return section


def _probe_rows(history: list[dict[str, Any]]) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for row in history:
        epoch = f"{row['epoch']} (random init)" if row["epoch"] == 0 else row["epoch"]
        rows.append(
            [epoch, row.get("step")]
            + [row.get(key) for key, _ in PROBES]
            + [row.get("eval_s")]
        )
    first, last = history[0], history[-1]
    if first["epoch"] == 0 and last["epoch"] > 0:
        rows.append(
            [f"change 0 -> {last['epoch']}", None]
            + [
                last[key] - first[key] if key in last and key in first else None
                for key, _ in PROBES
            ]
            + [None]
        )
    return rows


def _reference_series(reference: dict[str, Any], key: str, name: str, color: Any) -> Series | None:
    spread = (reference.get("probes") or {}).get(key) or {}
    before, after = parse_spread(spread.get("before")), parse_spread(spread.get("after"))
    points = [(0, before)] if before else []
    if after and reference.get("epochs"):
        points.append((reference["epochs"], after))
    if not points:
        return None
    seeds = len(reference.get("seeds") or [])
    return Series(
        f"{name}: reference mean ± std" + (f" ({seeds} seeds)" if seeds else ""),
        [p[0] for p in points],
        [p[1][0] for p in points],
        yerr=[p[1][1] for p in points],
        fmt="s",
        color=color,
        alpha=0.45,
    )


def probe_section(run: PretrainRun, reference: dict[str, Any] | None) -> Section:
    """The frozen-backbone probe table and their top-1 over the evaluated epochs."""
    section = Section("Frozen-backbone probes")
    history = sorted((run.metrics or {}).get("history") or [], key=lambda row: row["epoch"])
    if not history:
        why = NO_METRICS if run.metrics is None else "metrics.json holds no evaluation"
        section.lack("Probe table", "the probe table and chart", why)
        return section
    info = (run.metrics or {}).get("run") or {}
    section.add(
        paragraph(
            f"Top-1 accuracy (%) of probes on the frozen online backbone, scored on the "
            f"{info.get('eval_split', 'test')} split; epoch 0 is the random initialisation."
        )
    )
    section.add(
        table(
            ["epoch", "step"] + [f"{name} top-1 (%)" for _, name in PROBES] + ["eval time (s)"],
            _probe_rows(history),
        )
    )
    series = []
    for index, (key, name) in enumerate(PROBES):
        color = f"C{index}"
        points = [(row["epoch"], row[key]) for row in history if key in row]
        series.append(Series(name, [p[0] for p in points], [p[1] for p in points], color=color))
        ref = _reference_series(reference, key, name, color) if reference else None
        if ref is not None:
            series.append(ref)
    panel = Panel(
        "Frozen-backbone probes", "epoch (0 = random init)", "top-1 accuracy (%)", series,
        integer_x=True, legend_outside=True,
    )  # fmt: skip
    section.figure("Probe accuracy over training", draw_panels([panel], size=(7.5, 4.2)), "", "")
    return section


def _share(eigenvalues: list[float]) -> list[float]:
    total = sum(eigenvalues)
    return [v / total for v in eigenvalues] if total > 0 else []


def _components_for(share: list[float], fraction: float) -> int:
    cumulative = 0.0
    for index, value in enumerate(share):
        cumulative += value
        if cumulative >= fraction:
            return index + 1
    return len(share)


def spectrum_section(run: PretrainRun) -> Section:
    """The covariance spectrum of the backbone's features at each evaluation, effective rank marked."""
    section = Section("Eigenvalue spectrum of the backbone features")
    spectra = [e for e in run.spectra if _share(e["eigenvalues"])]
    if not spectra:
        why = (
            "no spectrum.json: the run predates saved spectra or ran with --no-eval"
            if not (run.path / "spectrum.json").exists()
            else "spectrum.json holds no evaluation"
        )
        section.lack("Spectrum", "the eigenvalue spectrum", why)
        return section
    first = spectra[0]
    section.add(
        paragraph(
            f"Eigenvalues of the covariance of the frozen backbone's {first['feature_dim']}-d "
            f"features on the {first['num_images']} probe training images, as a share of their "
            "sum (log scale), largest first. A spectrum that drops after a few components is "
            "(dimensional) collapse. Dashed lines: effective rank (exp of the entropy of the "
            "normalised singular values). Shares below 1e-12 (numerically zero) are not drawn."
        )
    )
    last = len(spectra) - 1
    log_series, cumulative_series, marks = [], [], []
    for index, evaluation in enumerate(spectra):
        epoch = evaluation["epoch"]
        emphasised = index in (0, last)
        color = "C7" if epoch == 0 else ("C3" if index == last else f"C{index % 6}")
        label = "random init (epoch 0)" if epoch == 0 else f"epoch {epoch}"
        share = _share(evaluation["eigenvalues"])
        drawn = [(i + 1, v) for i, v in enumerate(share) if v > 1e-12]
        style = dict(color=color, alpha=1.0 if emphasised else 0.5, linewidth=2 if emphasised else 1)
        fmt = "-" if len(drawn) > 2 else "-o"  # a collapsed spectrum is one or two points
        log_series.append(Series(label, [p[0] for p in drawn], [p[1] for p in drawn], fmt=fmt, **style))
        running, cumulative = 0.0, []
        for value in share:
            running += value
            cumulative.append(100 * running)
        cumulative_series.append(
            Series(label, list(range(1, len(share) + 1)), cumulative, fmt="-", **style)
        )
        marks.append((evaluation["effective_rank"], f"eff. rank {label}: {evaluation['effective_rank']:.1f}", color))
    panels = [
        Panel("Covariance spectrum", "component (sorted by eigenvalue)", "eigenvalue / sum of eigenvalues", log_series, logy=True, vlines=marks),
        Panel("Cumulative variance", "number of components", "variance explained (%)", cumulative_series, vlines=marks),
    ]  # fmt: skip
    section.figure("Spectrum at random init and after training", draw_panels(panels), "", "")
    rows = []
    for evaluation in spectra:
        share = _share(evaluation["eigenvalues"])
        rows.append(
            (
                evaluation["epoch"],
                evaluation["effective_rank"],
                evaluation.get("matrix_entropy"),
                100 * share[0],
                _components_for(share, 0.9),
            )
        )
    section.add(
        table(
            ("epoch", "effective rank", "matrix entropy (nats)", "top eigenvalue share (%)",
             "components for 90% of variance"),
            rows,
        )  # fmt: skip
    )
    return section


def _xy(curve: Curve, by_epoch: bool = False) -> tuple[list[float], list[float]]:
    if by_epoch:  # logged at an epoch's end: the epoch column is 0-based, x is epochs done
        points = [(epoch + 1, value) for _, epoch, value in curve if epoch is not None]
    else:
        points = [(step, value) for step, _, value in curve]
    return [p[0] for p in points], [p[1] for p in points]


def _curve_panels(curves: dict[str, Curve]) -> tuple[list[Panel], list[str]]:
    panels, missing = [], []
    losses = []
    for index, name in enumerate(LOSSES):
        if f"{name}_step" in curves:
            x, y = _xy(curves[f"{name}_step"])
            losses.append(Series(f"{name} (per step)", x, y, fmt="-", color=f"C{index}", alpha=0.6, linewidth=1))
        if f"{name}_epoch" in curves:
            x, y = _xy(curves[f"{name}_epoch"])
            losses.append(Series(f"{name} (epoch mean)", x, y, fmt="o", color=f"C{index}"))
    if losses:
        panels.append(Panel("Training loss", "training step", "loss", losses))
    else:
        missing.append("training loss")
    lrs = [
        Series(name.split("/", 1)[-1], *_xy(curve), fmt="-")
        for name, curve in sorted(curves.items())
        if name.startswith("lr-")
    ]
    if lrs:
        panels.append(Panel("Learning rate", "training step", "learning rate", lrs))
    else:
        missing.append("learning rate")
    if "momentum" in curves:
        panels.append(Panel("Teacher momentum", "training step", "EMA momentum", [Series("", *_xy(curves["momentum"]), fmt="-")]))
    else:
        missing.append("teacher momentum (only methods with an EMA teacher log it)")
    probe = []
    for name, label in (("train_online_cls_top1", "train batches"), ("val_online_cls_top1", "validation")):
        if name in curves:
            x, y = _xy(curves[name])
            probe.append(Series(label, x, [100 * v for v in y], fmt="-" if name.startswith("train") else "-o", alpha=0.8))
    if probe:
        panels.append(Panel("Online linear probe", "training step", "top-1 accuracy (%)", probe))
    else:
        missing.append("online-probe accuracy (the data have no labels)")
    for quantity, unit in (("effective_rank", "effective rank"), ("matrix_entropy", "matrix entropy (nats)")):
        series = [
            Series(part, *_xy(curves[f"diag/{part}_{quantity}"], by_epoch=True), fmt="-o")
            for part in ("backbone", "projection")
            if f"diag/{part}_{quantity}" in curves
        ]
        if series:
            title = f"{unit.split(' (')[0].capitalize()} of the last training batch"
            panels.append(Panel(title, "epoch", unit, series, integer_x=True))
        else:
            missing.append(f"{unit.split(' (')[0]} per epoch")
    return panels, missing  # fmt: skip


def curves_section(run: PretrainRun) -> Section:
    """Training curves from Lightning's CSV logs."""
    section = Section("Training curves")
    if not run.curves:
        section.lack("Curves", "the training curves", "no csv/version_*/metrics.csv in the run folder")
        return section
    panels, missing = _curve_panels(run.curves)
    section.add(
        paragraph(
            "From the run's CSV logs (csv/version_*/metrics.csv; a resumed run's versions are "
            "joined). Effective rank and matrix entropy are of the backbone features and "
            "projections of each epoch's last training batch."
        )
    )
    section.figure("Loss, schedules, online probe and collapse diagnostics", draw_panels(panels) if panels else None, "the training curves", "nothing the report draws was logged")
    for what in missing:
        section.missing.append(f"{what} (not in the logs)")
    if missing:
        section.add(paragraph("Not in the logs: " + "; ".join(missing) + ".", "na"))
    return section  # fmt: skip
