"""``lightly-matrix export CKPT --out FILE``: a backbone for mmdet or (``--format``) plain PyTorch;
above :mod:`lightly_matrix.export` and :mod:`lightly_matrix.transfer`: neither imports the other."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lightly_matrix.export import MMDET_INSTALL_HINT, export_backbone, mmdet_import_error
from lightly_matrix.export.convert import TRUST_PICKLE_RISK
from lightly_matrix.export.plain import FORMATS
from lightly_matrix.user_files import path_text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``export`` options."""
    add = parser.add_argument
    add("checkpoint", type=path_text, help="our .ckpt or a Lightly, torchvision or timm state dict")
    add("--out", required=True, type=path_text, help="output file (.pth); never overwritten")
    add("--force", action="store_true", help="replace --out if it is an existing regular file")
    add(
        "--format",
        choices=FORMATS,
        default="mmdet",
        help="mmdet: for init_cfg of our mmdet configs; torchvision (ResNets) or timm (ViTs): a"
        " plain state dict (the output says how to load it)",
    )
    add("--arch", help="timm name of ViT weights that do not record it")
    add(
        "--trust-pickle", action="store_true", help=f"read a pickled nn.Module: {TRUST_PICKLE_RISK}"
    )


def run(args: argparse.Namespace) -> int:
    """Export, verify against the matching mmdet backbone (if installed), and write ``--out``."""
    options = {"force": args.force, "trust_pickle": args.trust_pickle, "arch": args.arch}
    if args.format != "mmdet":
        from lightly_matrix.export.plain import export_plain

        plain = export_plain(args.checkpoint, args.out, args.format, **options)
        print(f"wrote {args.out}: {plain.architecture}, {len(plain.state_dict)} tensors")
        if plain.cifar_stem:
            print(
                "note: a CIFAR-stem ResNet (3x3 stride-1 conv1, no max-pool): change torchvision's"
                " model as below before loading; mmdet's ResNet cannot load it"
            )
        print("use (a strict load: every key matches):")
        load = f"model.load_state_dict(torch.load({args.out!r}, weights_only=True))"
        print(f"  {plain.build}\n  {load}")
        return 0
    reason = mmdet_import_error()
    backbone = export_backbone(args.checkpoint, args.out, verify=reason is None, **options)
    source = {"checkpoint": "as the checkpoint records", "--arch": "as --arch says"}
    checked = f"all of mmdet's {backbone.backbone_cfg['type']} covered"
    print(
        f"wrote {args.out}: {backbone.architecture}"
        f" ({source.get(backbone.meta['architecture_source'], 'read from the weights')}),"
        f" {len(backbone.state_dict)} tensors, {checked if reason is None else 'not checked'}"
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
