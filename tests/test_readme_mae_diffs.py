"""The front page and the manual's diffs of Lightly's MAE examples.

README.md: at most 200 lines, the first loss snippet in its first 60, and its results table equal to
the files in benchmarks/results/ it names. docs/losses.md: its diffs of Lightly's MAE examples,
applied to a tiny MAE of the same shape: the added lines are the page's own, the regulariser sees
the encoder's CLS token, and one step has a finite loss and gradients in the encoder (CPU, a
fraction of a second)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from lightly.models import utils
from lightly.models.modules import MaskedVisionTransformerDecoderTIMM, MaskedVisionTransformerTIMM
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from lightly_matrix.loss import MatrixEntropyLoss

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
LOSSES_PAGE = ROOT / "docs" / "losses.md"
RESULTS = ROOT / "benchmarks" / "results"


def _diff_blocks() -> list[list[str]]:
    return [b.splitlines() for b in re.findall(r"```diff\n(.*?)```", LOSSES_PAGE.read_text(), re.S)]


def test_readme_is_a_front_page():
    lines = README.read_text().splitlines()
    assert len(lines) <= 200
    first_python = lines.index("```python")
    assert first_python < 60
    assert "from lightly_matrix.loss import" in "\n".join(lines[first_python : first_python + 5])
    assert "make demo" in "\n".join(lines[:20]) and "make test" in "\n".join(lines[:20])


def test_readme_results_are_the_files_numbers():
    probes = json.loads((RESULTS / "pretrain_digits-30ep-best" / "results.json").read_text())
    names = {"random init": "random init", "Matrix-SSL": "matrix_ssl", "CorInfoMax": "corinfomax"}
    names |= {"MEC": "mec", "BYOL (Lightly)": "byol", "Barlow Twins (Lightly)": "barlowtwins"}
    names |= {"VICReg (Lightly)": "vicreg"}
    summary = {
        row["method"]: row
        for row in probes["summary"]
        if row["method"] != "random init" or row["backbone"] == "resnet18"
    }
    rows = [line for line in README.read_text().splitlines() if line.startswith("| ")]
    checked = 0
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        key = names.get(cells[0])
        if key is None or len(cells) != 4:
            continue
        row = summary[key]
        assert cells[1:4] == [row["knn_top1"], row["linear_top1"], row["few_label_top1"]], line
        checked += 1
    assert checked == len(names)


class TinyMAE(nn.Module):
    """Lightly's ``examples/pytorch/mae.py`` model at toy size, with the page's diff applied."""

    def __init__(self) -> None:
        super().__init__()
        vit = VisionTransformer(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2)
        self.mask_ratio, self.patch_size = 0.75, 8
        self.backbone = MaskedVisionTransformerTIMM(vit=vit)
        self.sequence_length = self.backbone.sequence_length
        self.decoder_embed = nn.Linear(vit.embed_dim, 16)
        self.decoder = MaskedVisionTransformerDecoderTIMM(
            num_patches=vit.patch_embed.num_patches,
            embed_dim=16,
            depth=1,
            num_heads=2,
            num_prefix_tokens=vit.num_prefix_tokens,
        )
        self.prediction_head = nn.Linear(16, self.patch_size**2 * 3)

    def forward(self, images: torch.Tensor):
        idx_keep, idx_mask = utils.random_token_mask(
            size=(images.shape[0], self.sequence_length), mask_ratio=self.mask_ratio
        )
        x_encoded = self.backbone.encode(images=images, idx_keep=idx_keep)
        x_decode = self.decoder_embed(x_encoded)
        x_masked = x_decode.new_zeros(images.shape[0], self.sequence_length, x_decode.shape[-1])
        x_masked = utils.set_at_index(x_masked, idx_keep, x_decode)
        x_decoded = self.decoder(x_masked, idx_mask=idx_mask)
        x_pred = self.prediction_head(utils.get_at_index(x_decoded, idx_mask))
        target = utils.get_at_index(utils.patchify(images, self.patch_size), idx_mask - 1)
        return x_pred, target, x_encoded


def test_mae_diffs_count_the_changed_lines():
    lightning, plain = _diff_blocks()[:2]
    changed = [[line for line in block if line.startswith("+")] for block in (lightning, plain)]
    assert [len(c) for c in changed] == [3, 5]  # the counts the page states
    assert "+from lightly_matrix.loss import MatrixEntropyLoss" in changed[0] + changed[1]


def test_the_pytorch_diff_runs_as_written():
    torch.manual_seed(0)
    model, criterion = TinyMAE(), nn.MSELoss()
    plain = _diff_blocks()[1]
    # The page's added lines, executed as they stand (indentation removed).
    namespace = {"MatrixEntropyLoss": MatrixEntropyLoss, "model": model, "criterion": criterion}
    namespace["images"] = torch.randn(8, 3, 32, 32)
    added = [line[1:].strip() for line in plain if line.startswith("+")]
    assert added[2] == "regulariser = MatrixEntropyLoss(gram_scale=3.0, weight=0.01)"
    for line in added[2:]:
        exec(line, namespace)  # lines of our own page, not user input
    loss = namespace["loss"]
    x_encoded = namespace["x_encoded"]
    assert x_encoded.shape == (8, 1 + 4, 32)  # CLS + the 25% kept of 16 patches
    assert torch.isfinite(loss)
    reg = namespace["regulariser"](x_encoded[:, 0])
    pixel = criterion(namespace["predictions"], namespace["targets"])
    torch.testing.assert_close(loss, pixel + reg)
    assert -0.01 * 8 * torch.log1p(torch.tensor(3.0 / 32)) <= reg < 0  # the page's bound
    loss.backward()
    grad = model.backbone.vit.cls_token.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_the_lightning_diff_adds_only_the_regulariser_to_the_loss():
    lightning = _diff_blocks()[0]
    added = [line[1:].strip() for line in lightning if line.startswith("+")]
    removed = [line[1:].strip() for line in lightning if line.startswith("-")]
    assert removed == ["loss = self.criterion(x_pred, target)"]
    assert added[-1] == removed[0] + " + self.regulariser(x_encoded[:, 0])"


@pytest.mark.parametrize("weight", [0.01, 0.00125])
def test_regulariser_gradient_reaches_every_encoder_layer(weight):
    torch.manual_seed(0)
    model = TinyMAE()
    _, _, x_encoded = model(torch.randn(8, 3, 32, 32))
    MatrixEntropyLoss(gram_scale=3.0, weight=weight)(x_encoded[:, 0]).backward()
    vit = model.backbone.vit
    encoder = [*vit.patch_embed.parameters(), *vit.blocks.parameters(), *vit.norm.parameters()]
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in encoder)
    assert model.decoder_embed.weight.grad is None  # the regulariser sees only the encoder
