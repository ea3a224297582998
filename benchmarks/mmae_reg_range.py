"""How far M-MAE's regulariser moves: value and gradient on features from orthogonal to collapsed.

``MatrixEntropyLoss`` L2-normalises the rows, so its value is bounded in closed form: from
``-w * m * log(1 + mu/d)`` (the ``m`` rows orthogonal) to ``-w * log(1 + mu * m/d)`` (all rows
equal). This prints both bounds and what the loss gives on synthetic features between the two
(isotropic Gaussian, power-law spectra as trained encoders show, rank-k subspaces) and, with
``--vit``, on CLS features of a randomly initialised timm ViT-B/16 on noise images. The gradient
column is the Frobenius norm of d(w * reg)/dF on the unit rows F: what it adds to the update.

    python benchmarks/mmae_reg_range.py                       # batch 32, dim 768, mu 3, w 0.01
    python benchmarks/mmae_reg_range.py --batch 256 --vit 1   # slower: one ViT-B forward
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lightly_matrix.loss import MatrixEntropyLoss
from lightly_matrix.utils.checks import positive_int
from lightly_matrix.utils.text import markdown_table

Features = Callable[[torch.Generator], torch.Tensor]


def _power_law(m: int, d: int, alpha: float) -> Features:
    """Gaussian rows with covariance eigenvalues ``i ** -alpha``: a decaying spectrum."""
    scale = torch.arange(1, d + 1, dtype=torch.float64) ** (-alpha / 2)
    return lambda g: torch.randn(m, d, generator=g, dtype=torch.float64) * scale


def _rank(m: int, d: int, k: int) -> Features:
    """Rows in a random k-dimensional subspace: dimensional collapse to rank k."""

    def draw(g: torch.Generator) -> torch.Tensor:
        basis = torch.randn(k, d, generator=g, dtype=torch.float64)
        return torch.randn(m, k, generator=g, dtype=torch.float64) @ basis

    return draw


def _shared(m: int, d: int, cosine: float) -> Features:
    """One common direction plus isotropic noise, mean pairwise cosine about ``cosine``."""
    sigma = math.sqrt(1 / cosine - 1)

    def draw(g: torch.Generator) -> torch.Tensor:
        u = torch.nn.functional.normalize(torch.randn(d, generator=g, dtype=torch.float64), dim=0)
        noise = torch.randn(m, d, generator=g, dtype=torch.float64) / math.sqrt(d)
        return u + sigma * noise

    return draw


def cases(m: int, d: int) -> dict[str, Features]:
    """Synthetic feature batches, from orthogonal (lowest value) to collapsed (highest)."""
    return {
        "orthogonal rows (lower bound)": lambda g: torch.eye(d, dtype=torch.float64)[:m],
        "Gaussian, isotropic": _power_law(m, d, 0.0),
        "Gaussian, spectrum i^-1": _power_law(m, d, 1.0),
        "Gaussian, spectrum i^-2": _power_law(m, d, 2.0),
        "shared direction, cosine 0.5": _shared(m, d, 0.5),
        "shared direction, cosine 0.9": _shared(m, d, 0.9),
        "shared direction, cosine 0.99": _shared(m, d, 0.99),
        "rank 16": _rank(m, d, 16),
        "rank 4": _rank(m, d, 4),
        "rank 1 (full collapse, upper bound)": _rank(m, d, 1),
    }


def lower_bound(m: int, d: int, mu: float, w: float) -> float:
    """``w * reg`` at its minimum: the Gram matrix a multiple of the identity on the smaller side
    (``m <= d``: orthogonal rows, ``-w * m * log(1 + mu/d)``)."""
    r = min(m, d)
    return -w * r * math.log1p(mu * m / (d * r))


def measure(loss: MatrixEntropyLoss, draw: Features, batches: int, seed: int) -> dict[str, float]:
    g = torch.Generator().manual_seed(seed)
    values, grads = [], []
    for _ in range(batches):
        # Unit rows, as the loss sees them, so that the gradient does not depend on their scale.
        feats = F.normalize(draw(g), dim=1).requires_grad_(True)
        value = loss(feats)
        (grad,) = torch.autograd.grad(value, feats)
        values.append(float(value.detach()))
        grads.append(float(grad.norm()))
    return {
        "min": min(values),
        "max": max(values),
        "grad": sum(grads) / len(grads),
    }


def vit_features(m: int, batches: int, seed: int) -> Features:
    """CLS features (after the final norm) of a randomly initialised ViT-B/16 on noise images."""
    import timm

    torch.manual_seed(seed)
    vit = timm.create_model("vit_base_patch16_224", pretrained=False).eval()

    def draw(g: torch.Generator) -> torch.Tensor:
        with torch.no_grad():
            images = torch.randn(m, 3, 224, 224, generator=g)
            return vit.forward_features(images)[:, 0].double()

    return draw


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=positive_int, default=32, help="rows m (default 32)")
    parser.add_argument("--dim", type=positive_int, default=768, help="feature dim d (ViT-B: 768)")
    parser.add_argument("--mu", type=float, default=3.0, help="M-MAE's mu (authors' run: 3)")
    parser.add_argument("--weight", type=float, default=0.01, help="M-MAE's lamb (paper: 0.01)")
    parser.add_argument("--batches", type=positive_int, default=200, help="batches per case")
    parser.add_argument("--vit", type=int, default=0, help="ViT-B/16 batches (0: skip; slow)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    m, d, mu, w = args.batch, args.dim, args.mu, args.weight
    loss = MatrixEntropyLoss(gram_scale=mu, weight=w)
    rows = [
        {"case": "closed form, rows orthogonal", "min": lower_bound(m, d, mu, w)},
        {"case": "closed form, all rows equal", "max": -w * math.log1p(mu * m / d)},
    ]
    for name, draw in cases(m, d).items():
        if m > d and name.startswith("orthogonal"):
            continue  # m > d rows cannot all be orthogonal
        batches = 1 if name.startswith("orthogonal") else args.batches
        rows.append({"case": name, "batches": batches, **measure(loss, draw, batches, args.seed)})
    if args.vit > 0:
        draw = vit_features(m, args.vit, args.seed)
        row = measure(loss, draw, args.vit, args.seed)
        rows.append({"case": "random-init ViT-B/16 CLS, noise images", "batches": args.vit, **row})
    columns = [
        ("case", "features"),
        ("batches", "batches"),
        ("min", "min w*reg"),
        ("max", "max w*reg"),
        ("grad", "mean ‖d(w*reg)/dF‖"),
    ]
    threads = torch.get_num_threads()
    print(
        f"M-MAE regulariser, batch {m}, dim {d}, mu {mu}, weight {w}"
        f" ({platform.machine()} CPU, {threads} threads, torch {torch.__version__}):\n"
    )
    print(markdown_table(rows, columns, cell=_cell))
    return 0


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6f}" if abs(value) >= 1e-4 else f"{value:.3g}"
    return "" if value is None else str(value)


if __name__ == "__main__":
    raise SystemExit(main())
