"""The report's eigenvalue spectrum of the backbone features (``spectrum.json``)."""

from __future__ import annotations

from typing import Any

from lightly_matrix.report.data import SPECTRUM_FILE, PretrainRun
from lightly_matrix.report.figures import Panel, Series, draw_panels
from lightly_matrix.report.html import Section, paragraph, table

#: Shares below this are numerically zero.
ZERO_SHARE = 1e-12


def _share(eigenvalues: list[float]) -> list[float]:
    total = sum(eigenvalues)
    return [v / total for v in eigenvalues] if total > 0 else []


def _cumulative(share: list[float]) -> list[float]:
    running, out = 0.0, []
    for value in share:
        running += value
        out.append(100.0 * running)
    return out


def _style(index: int, count: int, epoch: int) -> dict[str, Any]:
    """Random init grey, the last evaluation red and bold, those between thin."""
    emphasised = index in (0, count - 1)
    color = "C7" if epoch == 0 else ("C3" if index == count - 1 else f"C{index % 6}")
    return dict(color=color, alpha=1.0 if emphasised else 0.5, linewidth=2 if emphasised else 1)


def _panels(spectra: list[dict[str, Any]]) -> list[Panel]:
    spectrum, cumulative, marks = [], [], []
    for index, evaluation in enumerate(spectra):
        epoch, rank = evaluation["epoch"], evaluation["effective_rank"]
        label = "random init (epoch 0)" if epoch == 0 else f"epoch {epoch}"
        style = _style(index, len(spectra), epoch)
        share = _share(evaluation["eigenvalues"])
        drawn = [(i + 1, v) for i, v in enumerate(share) if v > ZERO_SHARE]
        fmt = "-" if len(drawn) > 2 else "-o"  # a collapsed spectrum is one or two points
        spectrum.append(Series(label, [p[0] for p in drawn], [p[1] for p in drawn], fmt=fmt,
                               **style))  # fmt: skip
        cumulative.append(Series(label, range(1, len(share) + 1), _cumulative(share), fmt="-",
                                 **style))  # fmt: skip
        marks.append((rank, f"effective rank, {label}: {rank:.1f}", style["color"]))
    return [
        Panel("Covariance spectrum", "component (sorted by eigenvalue)",
              "eigenvalue / sum of eigenvalues", spectrum, logy=True, vlines=marks,
              legend="below"),
        Panel("Cumulative variance", "number of components", "variance explained (%)",
              cumulative, vlines=marks, legend="below"),
    ]  # fmt: skip


def _components_for(share: list[float], percent: float) -> int:
    return next((i + 1 for i, c in enumerate(_cumulative(share)) if c >= percent), len(share))


def spectrum_section(run: PretrainRun) -> Section:
    """The covariance spectrum of the backbone features per evaluation, effective rank marked."""
    section = Section("Eigenvalue spectrum of the backbone features")
    spectra = [e for e in run.spectra if _share(e["eigenvalues"])]
    if not spectra:
        why = (
            "spectrum.json holds no evaluation"
            if (run.path / SPECTRUM_FILE).exists()
            else "no spectrum.json: the run predates saved spectra or ran with --no-eval"
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
            f"normalised singular values). Shares below {ZERO_SHARE:g} (numerically zero) are not "
            "drawn."
        )
    )
    png = draw_panels(_panels(spectra), size=(5.6, 4.8))
    section.figure("Spectrum at random init and after training", png, "", "")
    headers = ("epoch", "effective rank", "matrix entropy (nats)", "top eigenvalue share (%)",
               "components for 90% of variance")  # fmt: skip
    rows = []
    for e in spectra:
        share = _share(e["eigenvalues"])
        rows.append((e["epoch"], e["effective_rank"], e.get("matrix_entropy"), 100 * share[0],
                     _components_for(share, 90.0)))  # fmt: skip
    section.add(table(headers, rows))
    return section
