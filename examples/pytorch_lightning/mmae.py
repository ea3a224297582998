# M-MAE (Yang et al., https://arxiv.org/abs/2309.17281) with PyTorch Lightning: Lightly's MAE
# plus the matrix-entropy regulariser on the encoder's CLS token.
#
#   python examples/pytorch_lightning/mmae.py                 # the embedded digits
#   python examples/pytorch_lightning/mmae.py path/to/images  # any folder of images
#   python examples/pytorch_lightning/mmae.py --steps 2       # a smoke test
#
# A ViT-Tiny with 4-px patches on 32-px images, small enough for a CPU (the paper's run:
# lightly-matrix pretrain --method mmae --preset imagenet_vitl16).
import argparse

import pytorch_lightning as pl
import torch
from lightly.data import LightlyDataset
from lightly.models import utils
from lightly.models.modules import (
    MaskedVisionTransformerDecoderTIMM,
    MaskedVisionTransformerTIMM,
)
from lightly.transforms import MAETransform
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from lightly_matrix.data.digits import DigitsDataset
from lightly_matrix.loss import MatrixEntropyLoss

parser = argparse.ArgumentParser(description="M-MAE on the embedded digits or a folder")
parser.add_argument("data", nargs="?", help="image folder (default: the embedded digits)")
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--steps", type=int, default=-1, help="stop after this many steps")
parser.add_argument("--batch-size", type=int, default=64)
args = parser.parse_args()


class MMAE(pl.LightningModule):
    def __init__(self):
        super().__init__()
        decoder_dim = 128
        vit = VisionTransformer(img_size=32, patch_size=4, embed_dim=192, depth=6, num_heads=3)
        self.mask_ratio = 0.75
        self.patch_size = vit.patch_embed.patch_size[0]
        self.backbone = MaskedVisionTransformerTIMM(vit=vit)
        self.sequence_length = self.backbone.sequence_length
        self.decoder_embed = nn.Linear(vit.embed_dim, decoder_dim)
        self.decoder = MaskedVisionTransformerDecoderTIMM(
            num_patches=vit.patch_embed.num_patches,
            embed_dim=decoder_dim,
            depth=2,
            num_heads=4,
            num_prefix_tokens=vit.num_prefix_tokens,
        )
        self.prediction_head = nn.Linear(decoder_dim, self.patch_size**2 * 3)
        self.criterion = nn.MSELoss()
        # -weight * logdet(I + gram_scale / d * F^T F): the paper's lamb 0.01 and mu 3.
        self.regulariser = MatrixEntropyLoss(gram_scale=3.0, weight=0.01)

    def training_step(self, batch, batch_idx):
        images = batch[0][0]  # one view
        batch_size = images.shape[0]
        idx_keep, idx_mask = utils.random_token_mask(
            size=(batch_size, self.sequence_length),
            mask_ratio=self.mask_ratio,
            device=images.device,
        )
        # The encoded tokens end with the ViT's final LayerNorm; index 0 is the CLS token.
        x_encoded = self.backbone.encode(images=images, idx_keep=idx_keep)
        x_decode = self.decoder_embed(x_encoded)
        x_masked = x_decode.new_zeros(batch_size, self.sequence_length, x_decode.shape[-1])
        x_masked = utils.set_at_index(x_masked, idx_keep, x_decode)
        x_decoded = self.decoder(x_masked, idx_mask=idx_mask)
        x_pred = self.prediction_head(utils.get_at_index(x_decoded, idx_mask))
        target = utils.get_at_index(utils.patchify(images, self.patch_size), idx_mask - 1)

        loss = self.criterion(x_pred, target) + self.regulariser(x_encoded[:, 0])
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=1.5e-3, weight_decay=0.05)


model = MMAE()

transform = MAETransform(input_size=32)
if args.data:
    dataset = LightlyDataset(input_dir=args.data, transform=transform)
else:
    dataset = DigitsDataset("train", transform=transform, image_size=32)

dataloader = torch.utils.data.DataLoader(
    dataset,
    batch_size=args.batch_size,
    shuffle=True,
    drop_last=True,
    num_workers=2,
)

accelerator = "gpu" if torch.cuda.is_available() else "cpu"

trainer = pl.Trainer(
    max_epochs=args.epochs, max_steps=args.steps, devices=1, accelerator=accelerator
)
trainer.fit(model=model, train_dataloaders=dataloader)
