# CorInfoMax (Ozsoy et al., NeurIPS 2022, https://arxiv.org/abs/2209.07999) with PyTorch Lightning.
#
#   python examples/pytorch_lightning/corinfomax.py                 # the embedded digits
#   python examples/pytorch_lightning/corinfomax.py path/to/images  # any folder of images
#   python examples/pytorch_lightning/corinfomax.py --steps 2       # a smoke test
#
# The settings are small enough for a CPU, not the paper's runs (for those:
# lightly-matrix pretrain --method corinfomax --preset cifar10_r18, or --preset imagenet_r50).
import argparse

import pytorch_lightning as pl
import torch
import torchvision
from lightly.data import LightlyDataset
from lightly.transforms.byol_transform import (
    BYOLTransform,
    BYOLView1Transform,
    BYOLView2Transform,
)
from torch import nn

from lightly_matrix.data.digits import DigitsDataset
from lightly_matrix.loss import CorInfoMaxLoss
from lightly_matrix.models.modules import CorInfoMaxProjectionHead

parser = argparse.ArgumentParser(description="CorInfoMax on the embedded digits or a folder")
parser.add_argument("data", nargs="?", help="image folder (default: the embedded digits)")
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--steps", type=int, default=-1, help="stop after this many steps")
parser.add_argument("--batch-size", type=int, default=128)
args = parser.parse_args()


class CorInfoMax(pl.LightningModule):
    def __init__(self):
        super().__init__()
        resnet = torchvision.models.resnet18()
        self.backbone = nn.Sequential(*list(resnet.children())[:-1])
        self.projection_head = CorInfoMaxProjectionHead(512, 1024, 64)
        # A submodule, so Lightning moves its float64 running statistics with the model and
        # saves them in checkpoints. Keep the batch at least as large as dim.
        self.criterion = CorInfoMaxLoss(dim=64, alpha=250.0, cov_momentum=0.01, mean_momentum=0.01)

    def forward(self, x):
        y = self.backbone(x).flatten(start_dim=1)
        return self.projection_head(y)

    def training_step(self, batch, batch_idx):
        x0, x1 = batch[0]
        loss = self.criterion(self.forward(x0), self.forward(x1))
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        # CorInfoMax's lr is absolute, not scaled by the batch.
        return torch.optim.SGD(self.parameters(), lr=0.5, momentum=0.9, weight_decay=1e-4)


model = CorInfoMax()

transform = BYOLTransform(
    view_1_transform=BYOLView1Transform(input_size=32, gaussian_blur=0.0),
    view_2_transform=BYOLView2Transform(input_size=32, gaussian_blur=0.0),
)
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
