# CorInfoMax (Ozsoy et al., NeurIPS 2022, https://arxiv.org/abs/2209.07999) in plain PyTorch.
#
#   python examples/pytorch/corinfomax.py                 # the embedded digits, no download
#   python examples/pytorch/corinfomax.py path/to/images  # any folder of images
#   python examples/pytorch/corinfomax.py --steps 2       # a smoke test
#
# The settings are small enough for a CPU, not the paper's runs (for those:
# lightly-matrix pretrain --method corinfomax --preset cifar10_r18, or --preset imagenet_r50).
import argparse

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
parser.add_argument("--steps", type=int, default=None, help="stop after this many steps")
parser.add_argument("--batch-size", type=int, default=128)
args = parser.parse_args()


class CorInfoMax(nn.Module):
    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.projection_head = CorInfoMaxProjectionHead(512, 1024, 64)

    def forward(self, x):
        y = self.backbone(x).flatten(start_dim=1)
        return self.projection_head(y)


resnet = torchvision.models.resnet18()
backbone = nn.Sequential(*list(resnet.children())[:-1])
model = CorInfoMax(backbone)

device = "cuda" if torch.cuda.is_available() else "cpu"
model.to(device)

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

# The running means and covariances are float64 buffers of the loss: move it with the model.
# Keep the batch at least as large as dim (the published runs use 3 to 8 x dim).
criterion = CorInfoMaxLoss(dim=64, alpha=250.0, cov_momentum=0.01, mean_momentum=0.01)
criterion.to(device)
# CorInfoMax's lr is absolute, not scaled by the batch.
optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=1e-4)

print("Starting Training")
step = 0
for epoch in range(args.epochs):
    total_loss = 0
    for batch in dataloader:
        x0, x1 = batch[0]
        x0 = x0.to(device)
        x1 = x1.to(device)
        z0 = model(x0)
        z1 = model(x1)
        loss = criterion(z0, z1)
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
