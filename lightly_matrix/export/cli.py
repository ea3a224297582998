"""``lightly-matrix export CKPT --out FILE``: a pretrained backbone as an mmdet checkpoint."""

from __future__ import annotations

import argparse
import json

from lightly_matrix.export import export_backbone


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``export`` options."""
    parser.add_argument(
        "checkpoint",
        help="our Lightning checkpoint (online backbone only), a Lightly nn.Sequential or"
        " torchvision ResNet, or a timm ViT (state dict or module file)",
    )
    parser.add_argument("--out", required=True, help="output file (.pth); never overwritten")
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")


def run(args: argparse.Namespace) -> int:
    """Export, verify against the matching mmdet backbone, and write ``--out``."""
    backbone = export_backbone(args.checkpoint, args.out, force=args.force)
    print(
        f"wrote {args.out}: {backbone.architecture}, {len(backbone.state_dict)} tensors, "
        f"all of mmdet's {backbone.backbone_cfg['type']} covered"
    )
    print("meta: " + json.dumps({k: v for k, v in backbone.meta.items() if v is not None}))
    print(
        "use: model.backbone.init_cfg = dict(type='Pretrained', "
        f"checkpoint='{args.out}', prefix='backbone.')"
    )
    return 0
