# Matrix-SSL (Zhang et al., ICML 2024, https://arxiv.org/abs/2305.17326) in plain PyTorch.
#
#   python examples/pytorch/matrix_ssl.py                 # the embedded digits, no download
#   python examples/pytorch/matrix_ssl.py path/to/images  # any folder of images
#   python examples/pytorch/matrix_ssl.py --steps 2       # a smoke test
#
# The settings are small enough for a CPU, not the paper's ImageNet run (for that:
# lightly-matrix pretrain --method matrix_ssl --preset imagenet_r50).
import argparse
import copy

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
parser.add_argument("--steps", type=int, default=None, help="stop after this many steps")
parser.add_argument("--batch-size", type=int, default=64)
args = parser.parse_args()


class MatrixSSL(nn.Module):
    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.projection_head = MatrixSSLProjectionHead(512, 1024, 1024)
        self.prediction_head = MatrixSSLPredictionHead(1024, 256, 1024)

        # The EMA teacher: a copy of backbone and projection head, without gradient.
        self.backbone_momentum = copy.deepcopy(self.backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)

    def forward(self, x):
        y = self.backbone(x).flatten(start_dim=1)
        return self.prediction_head(self.projection_head(y))

    @torch.no_grad()
    def forward_momentum(self, x):
        y = self.backbone_momentum(x).flatten(start_dim=1)
        return self.projection_head_momentum(y)


resnet = torchvision.models.resnet18()
backbone = nn.Sequential(*list(resnet.children())[:-1])
model = MatrixSSL(backbone)

device = "cuda" if torch.cuda.is_available() else "cpu"
model.to(device)

# Two asymmetric views (blur and solarisation differ), as the authors' MoCo v3 augmentations.
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

# criterion(z, p): z the online prediction (gets the gradient), p the teacher's projection.
criterion = MatrixSSLLoss(gamma=1.0)
optimizer = torch.optim.SGD(model.parameters(), lr=0.06, momentum=0.9, weight_decay=1e-5)

print("Starting Training")
step = 0
for epoch in range(args.epochs):
    total_loss = 0
    momentum_val = cosine_schedule(epoch, args.epochs, 0.99, 1)
    for batch in dataloader:
        x0, x1 = batch[0]
        update_momentum(model.backbone, model.backbone_momentum, m=momentum_val)
        update_momentum(model.projection_head, model.projection_head_momentum, m=momentum_val)
        x0 = x0.to(device)
        x1 = x1.to(device)
        z0 = model(x0)
        z1 = model(x1)
        p0 = model.forward_momentum(x0)
        p1 = model.forward_momentum(x1)
        loss = 0.5 * (criterion(z0, p1) + criterion(z1, p0))
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
