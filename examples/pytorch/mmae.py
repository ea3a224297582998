# M-MAE (Yang et al., https://arxiv.org/abs/2309.17281) in plain PyTorch: Lightly's MAE plus the
# matrix-entropy regulariser on the encoder's CLS token.
#
#   python examples/pytorch/mmae.py                 # the embedded digits, no download
#   python examples/pytorch/mmae.py path/to/images  # any folder of images
#   python examples/pytorch/mmae.py --steps 2       # a smoke test
#
# A ViT-Tiny with 4-px patches on 32-px images, small enough for a CPU (the paper's run:
# lightly-matrix pretrain --method mmae --preset imagenet_vitl16).
import argparse

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
parser.add_argument("--steps", type=int, default=None, help="stop after this many steps")
parser.add_argument("--batch-size", type=int, default=64)
args = parser.parse_args()


class MMAE(nn.Module):
    def __init__(self, vit):
        super().__init__()
        decoder_dim = 128
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

    def forward(self, images):
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

        patches = utils.patchify(images, self.patch_size)
        target = utils.get_at_index(patches, idx_mask - 1)  # no class token among the patches
        return x_pred, target, x_encoded[:, 0]


vit = VisionTransformer(img_size=32, patch_size=4, embed_dim=192, depth=6, num_heads=3)
model = MMAE(vit)

device = "cuda" if torch.cuda.is_available() else "cpu"
model.to(device)

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

criterion = nn.MSELoss()
# -weight * logdet(I + gram_scale / d * F^T F): the paper's lamb 0.01 and mu 3.
regulariser = MatrixEntropyLoss(gram_scale=3.0, weight=0.01)
optimizer = torch.optim.AdamW(model.parameters(), lr=1.5e-3, weight_decay=0.05)

print("Starting Training")
step = 0
for epoch in range(args.epochs):
    total_loss = 0
    for batch in dataloader:
        images = batch[0][0].to(device)  # one view
        predictions, targets, cls_token = model(images)
        loss = criterion(predictions, targets) + regulariser(cls_token)
        total_loss += loss.detach()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        step += 1
        if step == args.steps:
            break
    avg_loss = total_loss / len(dataloader)
    print(f"epoch: {epoch:>02}, loss: {avg_loss:.5f}")
    if step == args.steps:
        break
