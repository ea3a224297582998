"""M-MAE in user code: Lightly's MAE example plus MatrixEntropyLoss on ``x_encoded[:, 0]``."""

from __future__ import annotations

import timm
import torch
import torch.nn.functional as F
from lightly.models import utils
from lightly.models.modules import (
    MaskedVisionTransformerDecoderTIMM,
    MaskedVisionTransformerTIMM,
)
from reference_losses import tcr_reference
from torch import nn

from lightly_matrix.loss import MatrixEntropyLoss

BATCH, SIZE, PATCH = 6, 32, 8


def _cls_after_final_norm(vit: nn.Module, images: torch.Tensor, idx_keep: torch.Tensor):
    """The encoder's CLS feature written out from timm's own layers, independently of Lightly."""
    tokens = vit.patch_embed(images)
    cls = vit.cls_token.expand(images.shape[0], -1, -1)
    tokens = torch.cat([cls, tokens], dim=1) + vit.pos_embed
    keep = idx_keep.unsqueeze(-1).expand(-1, -1, tokens.shape[-1])
    tokens = torch.gather(tokens, 1, keep)  # idx_keep always holds the class token (index 0)
    return vit.norm(vit.blocks(vit.norm_pre(tokens)))[:, 0]


def test_regulariser_on_lightlys_mae_forward_matches_reference() -> None:
    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", img_size=SIZE, patch_size=PATCH)
    backbone = MaskedVisionTransformerTIMM(vit=vit)
    decoder_dim = 32
    decoder_embed = nn.Linear(vit.embed_dim, decoder_dim)
    decoder = MaskedVisionTransformerDecoderTIMM(
        num_patches=vit.patch_embed.num_patches, embed_dim=decoder_dim, depth=1, num_heads=2
    )
    decoder_pred = nn.Linear(decoder_dim, PATCH**2 * 3)
    images = torch.randn(BATCH, 3, SIZE, SIZE)

    # Lightly's MAE example: encode the kept tokens, decode, MSE on the masked patches.
    idx_keep, idx_mask = utils.random_token_mask(
        size=(BATCH, backbone.sequence_length), mask_ratio=0.75
    )
    x_encoded = backbone.encode(images=images, idx_keep=idx_keep)
    x_decode = decoder_embed(x_encoded)
    x_masked = utils.repeat_token(decoder.mask_token, (BATCH, backbone.sequence_length))
    x_masked = utils.set_at_index(x_masked, idx_keep, x_decode.type_as(x_masked))
    x_decoded = decoder.decode(decoder.add_pos_embed(x_masked))
    x_pred = decoder_pred(utils.get_at_index(x_decoded, idx_mask))
    target = utils.get_at_index(utils.patchify(images, PATCH), idx_mask - 1)
    pixel_loss = F.mse_loss(x_pred, target)

    # M-MAE: one more line, on the CLS token after the encoder's final norm.
    reg_fn = MatrixEntropyLoss(gram_scale=3.0, weight=0.01)
    loss = pixel_loss + reg_fn(x_encoded[:, 0])

    with torch.no_grad():
        cls_ref = _cls_after_final_norm(vit, images, idx_keep)
    torch.testing.assert_close(x_encoded[:, 0], cls_ref, rtol=1e-5, atol=1e-5)
    expected = pixel_loss.double() + 0.01 * tcr_reference(cls_ref.double(), 3.0, False)
    torch.testing.assert_close(loss.double(), expected, rtol=1e-5, atol=1e-6)

    loss.backward()
    assert vit.cls_token.grad is not None and torch.isfinite(vit.cls_token.grad).all()
    assert vit.cls_token.grad.abs().sum() > 0
