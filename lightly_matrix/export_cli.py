"""``lightly-matrix export CKPT --out FILE``: a pretrained backbone as an mmdet checkpoint, or
(``--format torchvision|timm``) as a plain torchvision ResNet / timm ViT state dict.

The command sits above both :mod:`lightly_matrix.export` (the conversion) and
:mod:`lightly_matrix.transfer` (which of our configs fine-tunes the export), so neither of those
packages imports the other's way up.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lightly_matrix.export import (
    MMDET_INSTALL_HINT,
    TRUST_PICKLE_RISK,
    export_backbone,
    mmdet_import_error,
)
from lightly_matrix.export.plain import FORMATS
from lightly_matrix.export.verify import quiet_pkg_resources_warning


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``export`` options."""
    parser.add_argument(
        "checkpoint",
        help="our Lightning checkpoint (online backbone only), a Lightly nn.Sequential or"
        " torchvision ResNet, or a timm ViT (state dict; a whole pickled module needs"
        " --trust-pickle)",
    )
    parser.add_argument("--out", required=True, help="output file (.pth); never overwritten")
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="mmdet",
        help="mmdet (default): for init_cfg of our mmdet configs; torchvision: a ResNet state"
        " dict for torchvision.models.resnetNN() (only fc.* missing); timm: a ViT state dict"
        " for timm.create_model(arch, num_classes=0)",
    )
    parser.add_argument(
        "--arch",
        default=None,
        help="the architecture, for weights that do not record it: a plain timm ViT state dict"
        " needs its timm model name, e.g. vit_small_patch16_224 (heads cannot be read from"
        " weights)",
    )
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help=f"also read a whole pickled nn.Module (torch.save(model)); this {TRUST_PICKLE_RISK}",
    )


def run(args: argparse.Namespace) -> int:
    """Export, verify against the matching mmdet backbone (if installed), and write ``--out``."""
    if args.format != "mmdet":
        return _run_plain(args)
    quiet_pkg_resources_warning()
    reason = mmdet_import_error()
    backbone = export_backbone(
        args.checkpoint,
        args.out,
        force=args.force,
        verify=reason is None,
        trust_pickle=args.trust_pickle,
        arch=args.arch,
    )
    checked = (
        f"all of mmdet's {backbone.backbone_cfg['type']} covered"
        if reason is None
        else "not checked against mmdet"
    )
    source = {
        "checkpoint": "as the checkpoint records",
        "--arch": "as --arch says",
        "weights": "read from the weights",
    }.get(backbone.meta.get("architecture_source"), "")
    print(
        f"wrote {args.out}: {backbone.architecture} ({source}), {len(backbone.state_dict)}"
        f" tensors, {checked}"
    )
    print("meta: " + json.dumps({k: v for k, v in backbone.meta.items() if v is not None}))
    if reason is not None:
        print(
            f"note: MMDetection cannot be imported ({reason}), so the check against mmdet's"
            f" backbone was skipped; to enable it (and transfer): {MMDET_INSTALL_HINT}"
        )
    print(
        "use: model.backbone.init_cfg = dict(type='Pretrained', "
        f"checkpoint='{args.out}', prefix='backbone.')"
    )
    print("fine-tune with mmdet's own tools/train.py (our config for this backbone):")
    from lightly_matrix.transfer.configs import mmdet_train_command

    print("  " + mmdet_train_command(backbone.architecture, backbone.backbone_cfg, Path(args.out)))
    return 0


def _run_plain(args: argparse.Namespace) -> int:
    """``--format torchvision|timm``: write the state dict, checked to load, and how to load it."""
    from lightly_matrix.export.plain import export_plain

    plain = export_plain(
        args.checkpoint,
        args.out,
        args.format,
        force=args.force,
        trust_pickle=args.trust_pickle,
        arch=args.arch,
    )
    print(
        f"wrote {args.out}: {plain.architecture}, {len(plain.state_dict)} tensors ({args.format})"
    )
    if plain.cifar_stem:
        print(
            "note: a CIFAR-stem ResNet (3x3 stride-1 conv1, no max-pool): change torchvision's"
            " model as below before loading; mmdet's ResNet cannot load it"
        )
    missing = " (only fc.* is missing)" if args.format == "torchvision" else ""
    print(f"use{missing}:")
    print(f"  {plain.build}")
    print(f"  model.load_state_dict(torch.load({str(args.out)!r}), strict=False)")
    return 0
