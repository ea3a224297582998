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
F64 = torch.float64


def cases(m: int, d: int) -> dict[str, Features]:
    """Synthetic feature batches, from orthogonal (lowest value) to collapsed (highest)."""

    def power_law(alpha: float) -> Features:  # covariance eigenvalues i^-alpha
        scale = torch.arange(1, d + 1, dtype=F64) ** (-alpha / 2)
        return lambda g: torch.randn(m, d, generator=g, dtype=F64) * scale

    def shared(cosine: float) -> Features:  # one common direction + noise: mean cosine ~ cosine
        sigma = math.sqrt(1 / cosine - 1) / math.sqrt(d)
        return lambda g: (
            F.normalize(torch.randn(d, generator=g, dtype=F64), dim=0)
            + sigma * (torch.randn(m, d, generator=g, dtype=F64))
        )

    def rank(k: int) -> Features:  # rows in a random k-dimensional subspace
        def draw(g: torch.Generator) -> torch.Tensor:
            basis = torch.randn(k, d, generator=g, dtype=F64)
            return torch.randn(m, k, generator=g, dtype=F64) @ basis

        return draw

    return {
        "orthogonal rows (lower bound)": lambda g: torch.eye(d, dtype=F64)[:m],
        "Gaussian, isotropic": power_law(0.0),
        "Gaussian, spectrum i^-1": power_law(1.0),
        "Gaussian, spectrum i^-2": power_law(2.0),
        **{f"shared direction, cosine {c}": shared(c) for c in (0.5, 0.9, 0.99)},
        "rank 16": rank(16),
        "rank 4": rank(4),
        "rank 1 (full collapse, upper bound)": rank(1),
    }


def lower_bound(m: int, d: int, mu: float, w: float) -> float:
    """``w * reg`` at its minimum: the Gram matrix a multiple of the identity on the smaller side
    (``m <= d``: orthogonal rows, ``-w * m * log(1 + mu/d)``)."""
    r = min(m, d)
    return -w * r * math.log1p(mu * m / (d * r))


def measure(loss: MatrixEntropyLoss, draw: Features, batches: int, seed: int) -> dict[str, float]:
    """Min and max value, and the mean gradient norm on the unit rows, over ``batches`` draws."""
    g = torch.Generator().manual_seed(seed)
    values, grads = [], []
    for _ in range(batches):
        # Unit rows, as the loss sees them, so that the gradient does not depend on their scale.
        feats = F.normalize(draw(g), dim=1).requires_grad_(True)
        value = loss(feats)
        values.append(float(value.detach()))
        grads.append(float(torch.autograd.grad(value, feats)[0].norm()))
    return {"min": min(values), "max": max(values), "grad": sum(grads) / len(grads)}


def vit_features(m: int, seed: int) -> Features:
    """CLS features (after the final norm) of a randomly initialised ViT-B/16 on noise images."""
    import timm

    torch.manual_seed(seed)
    vit = timm.create_model("vit_base_patch16_224", pretrained=False).eval()

    @torch.no_grad()
    def draw(g: torch.Generator) -> torch.Tensor:
        images = torch.randn(m, 3, 224, 224, generator=g)
        return vit.forward_features(images)[:, 0].double()  # type: ignore[operator]

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
    draws = cases(m, d)
    if m > d:  # m > d rows cannot all be orthogonal
        draws.pop("orthogonal rows (lower bound)")
    if args.vit > 0:
        draws["random-init ViT-B/16 CLS, noise images"] = vit_features(m, args.seed)
    for name, draw in draws.items():
        batches = (
            1 if name.startswith("orthogonal") else args.vit if "ViT" in name else args.batches
        )
        rows.append({"case": name, "batches": batches, **measure(loss, draw, batches, args.seed)})
    columns = [("case", "features"), ("batches", "batches"), ("min", "min w*reg")]
    columns += [("max", "max w*reg"), ("grad", "mean ‖d(w*reg)/dF‖")]
    print(
        f"M-MAE regulariser, batch {m}, dim {d}, mu {mu}, weight {w} ({platform.machine()} CPU,"
        f" {torch.get_num_threads()} threads, torch {torch.__version__}):\n"
    )
    print(markdown_table(rows, columns, cell=_cell))
    return 0


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6f}" if abs(value) >= 1e-4 else f"{value:.3g}"
    return "" if value is None else str(value)


if __name__ == "__main__":
    raise SystemExit(main())
