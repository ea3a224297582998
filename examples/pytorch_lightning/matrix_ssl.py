# Matrix-SSL (Zhang et al., ICML 2024, https://arxiv.org/abs/2305.17326) with PyTorch Lightning.
#
#   python examples/pytorch_lightning/matrix_ssl.py                 # the embedded digits
#   python examples/pytorch_lightning/matrix_ssl.py path/to/images  # any folder of images
#   python examples/pytorch_lightning/matrix_ssl.py --steps 2       # a smoke test
#
# The settings are small enough for a CPU, not the paper's ImageNet run (for that:
# lightly-matrix pretrain --method matrix_ssl --preset imagenet_r50).
import argparse
import copy

import pytorch_lightning as pl
import torch
import torchvision
from lightly.data import LightlyDataset
from lightly.models.utils import deactivate_requires_grad, update_momentum
from lightly.transforms.byol_transform import (
    BYOLTransform,
    BYOLView1Transform,
    BYOLView2Transform,
)
from lightly.utils.scheduler import cosine_schedule
from torch import nn

from lightly_matrix.data.digits import DigitsDataset
from lightly_matrix.loss import MatrixSSLLoss
from lightly_matrix.models.modules import MatrixSSLPredictionHead, MatrixSSLProjectionHead

parser = argparse.ArgumentParser(description="Matrix-SSL on the embedded digits or a folder")
parser.add_argument("data", nargs="?", help="image folder (default: the embedded digits)")
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--steps", type=int, default=-1, help="stop after this many steps")
parser.add_argument("--batch-size", type=int, default=64)
args = parser.parse_args()


class MatrixSSL(pl.LightningModule):
    def __init__(self, max_epochs):
        super().__init__()
        self.max_epochs = max_epochs
        resnet = torchvision.models.resnet18()
        self.backbone = nn.Sequential(*list(resnet.children())[:-1])
        self.projection_head = MatrixSSLProjectionHead(512, 1024, 1024)
        self.prediction_head = MatrixSSLPredictionHead(1024, 256, 1024)

        self.backbone_momentum = copy.deepcopy(self.backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)

        # criterion(z, p): z the online prediction, p the teacher's projection.
        self.criterion = MatrixSSLLoss(gamma=1.0)

    def forward(self, x):
        y = self.backbone(x).flatten(start_dim=1)
        return self.prediction_head(self.projection_head(y))

    @torch.no_grad()
    def forward_momentum(self, x):
        y = self.backbone_momentum(x).flatten(start_dim=1)
        return self.projection_head_momentum(y)

    def training_step(self, batch, batch_idx):
        momentum = cosine_schedule(self.current_epoch, self.max_epochs, 0.99, 1)
        update_momentum(self.backbone, self.backbone_momentum, m=momentum)
        update_momentum(self.projection_head, self.projection_head_momentum, m=momentum)
        x0, x1 = batch[0]
        z0, z1 = self.forward(x0), self.forward(x1)
        p0, p1 = self.forward_momentum(x0), self.forward_momentum(x1)
        loss = 0.5 * (self.criterion(z0, p1) + self.criterion(z1, p0))
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.06, momentum=0.9, weight_decay=1e-5)


model = MatrixSSL(max_epochs=args.epochs)

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
