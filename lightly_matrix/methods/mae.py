"""Masked autoencoder (He et al., 2022) on Lightly's timm ViT wrapper, with a hook for a matrix
regulariser on the encoder's CLS feature: none here (plain MAE), TCR in M-MAE, square in U-MAE."""

from __future__ import annotations

from typing import Any, ClassVar, Unpack

import torch
import torch.nn.functional as F
from lightly.models import utils
from lightly.models.modules import MaskedVisionTransformerDecoderTIMM
from lightly.models.modules.masked_vision_transformer_timm import (
    MaskedVisionTransformerTIMM,
    init_weights,
)
from torch import Tensor, nn

from lightly_matrix.methods.base import PretrainModule, SharedArgs


class MAE(PretrainModule):
    """Masked-autoencoder pretraining module (also the base of M-MAE and U-MAE).

    Defaults are the MAE/M-MAE ImageNet recipe (AdamW, betas (0.9, 0.95)). The loss is
    ``pixel_loss + reg_weight * regularizer(cls)``, ``cls`` the encoder's normalised CLS token.
    Shared arguments: :class:`~lightly_matrix.methods.base.SharedArgs`.

    Args:
        mask_ratio: Fraction of patches hidden from the encoder.
        decoder_dim: Decoder width.
        decoder_depth: Decoder blocks.
        decoder_num_heads: Decoder attention heads.
        norm_pix_loss: Normalise each target patch to zero mean and unit variance.
        reg_weight: Weight of the regulariser, the authors' ``lamb`` (``None``: the method's
            ``default_reg_weight``).
        gram_scale: TCR scale in ``-logdet(I + gram_scale/d F^T F)`` (M-MAE; the authors' ``mu``).
        centering: Centre the features before the TCR term (M-MAE only).
        double_norm: Apply the encoder's final LayerNorm again to the CLS feature the regulariser
            and the probe read, as the M-MAE authors' ``models_mae.py`` does.
    """

    method = "mae"
    masked = True
    default_transform = "mae"
    shared_defaults: ClassVar[dict[str, Any]] = {
        "backbone": "vit_base_patch16_224",
        "optimizer": "adamw",
        "lr": 1.5e-4,
        "weight_decay": 0.05,
        "warmup_epochs": 40.0,
    }
    #: ``reg_weight`` when none is given.
    default_reg_weight: ClassVar[float] = 0.0
    backbone: MaskedVisionTransformerTIMM

    def __init__(
        self,
        *,
        mask_ratio: float = 0.75,
        decoder_dim: int = 512,
        decoder_depth: int = 8,
        decoder_num_heads: int = 16,
        norm_pix_loss: bool = True,
        reg_weight: float | None = None,
        gram_scale: float = 1.0,
        centering: bool = False,
        double_norm: bool = False,
        **shared: Unpack[SharedArgs],
    ) -> None:
        super().__init__()
        if reg_weight is None:
            self.hparams["reg_weight"] = self.default_reg_weight
        vit: Any = self.backbone.vit  # timm's VisionTransformer
        self.patch_size = vit.patch_embed.patch_size[0]
        self.sequence_length = self.backbone.sequence_length
        # Lightly's decoder leaves the input embedding and the pixel prediction to the method.
        self.decoder_embed = nn.Linear(vit.embed_dim, decoder_dim)
        self.decoder = MaskedVisionTransformerDecoderTIMM(
            num_patches=vit.patch_embed.num_patches,
            embed_dim=decoder_dim,
            depth=decoder_depth,
            num_heads=decoder_num_heads,
            mlp_ratio=4.0,
        )
        self.decoder_pred = nn.Linear(decoder_dim, self.patch_size**2 * 3)
        self.decoder_embed.apply(init_weights)
        self.decoder_pred.apply(init_weights)
        self.criterion = self.build_regularizer()

    def build_regularizer(self) -> nn.Module | None:
        """The regulariser on CLS features; plain MAE has none."""
        return None

    def forward_decoder(self, x_encoded: Tensor, idx_keep: Tensor, idx_mask: Tensor) -> Tensor:
        """Predicts the pixels of the masked patches from the visible tokens."""
        batch_size = x_encoded.shape[0]
        x_decode = self.decoder_embed(x_encoded)
        x_masked = utils.repeat_token(self.decoder.mask_token, (batch_size, self.sequence_length))
        x_masked = utils.set_at_index(x_masked, idx_keep, x_decode.type_as(x_masked))
        x_decoded = self.decoder.decode(self.decoder.add_pos_embed(x_masked))
        return self.decoder_pred(utils.get_at_index(x_decoded, idx_mask))

    def pixel_loss(self, images: Tensor, predictions: Tensor, idx_mask: Tensor) -> Tensor:
        """Mean squared error on the masked patches (targets normalised per patch if asked)."""
        # idx_mask counts the class token at index 0; patches do not have it.
        target = utils.get_at_index(utils.patchify(images, self.patch_size), idx_mask - 1)
        if self.hparams["norm_pix_loss"]:
            var, mean = torch.var_mean(target, dim=-1, keepdim=True)
            target = (target - mean) / (var + 1e-6) ** 0.5
        return F.mse_loss(predictions, target)

    def training_step(self, batch: tuple[list[Tensor], Tensor], batch_idx: int) -> Tensor:
        """One step on one view: rebuild the masked patches, plus ``reg_weight`` x regulariser."""
        images, targets = batch[0][0], batch[1]
        idx_keep, idx_mask = utils.random_token_mask(
            size=(images.shape[0], self.sequence_length),
            mask_ratio=self.hparams["mask_ratio"],
            device=images.device,
        )
        # The encoder's tokens after its final norm, CLS first.
        tokens = self.backbone.encode(images, idx_keep=idx_keep)
        loss = self.pixel_loss(images, self.forward_decoder(tokens, idx_keep, idx_mask), idx_mask)
        cls_features = tokens[:, 0]
        if self.hparams["double_norm"]:
            cls_features = self.backbone.vit.norm(cls_features)
        if self.criterion is not None:
            regularizer = self.criterion(cls_features)
            self.log_loss("train_pixel_loss", loss, len(targets))
            self.log_loss("train_regularizer", regularizer, len(targets))
            loss = loss + self.hparams["reg_weight"] * regularizer
        return self.finish_step(loss, targets, batch_idx, cls_features)
