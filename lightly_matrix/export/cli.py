"""``lightly-matrix export CKPT --out FILE``: a pretrained backbone as an mmdet checkpoint."""

from __future__ import annotations

import argparse
import importlib.util
import json
import shlex
from pathlib import Path

from lightly_matrix.export import (
    MMDET_INSTALL_HINT,
    TRUST_PICKLE_RISK,
    Backbone,
    export_backbone,
    mmdet_import_error,
)
from lightly_matrix.export.verify import quiet_pkg_resources_warning

#: Shell expression for mmdet's training script where mmdet is not installed here.
_TRAIN_PY_EXPR = (
    "$(python -c 'import mmdet,os;print(os.path.dirname(mmdet.__file__))')/.mim/tools/train.py"
)


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


def mmdet_train_py() -> str:
    """Path of the ``tools/train.py`` that the mmdet wheel ships (``mmdet/.mim/tools``)."""
    try:
        spec = importlib.util.find_spec("mmdet")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin:
        train_py = Path(spec.origin).parent / ".mim" / "tools" / "train.py"
        if train_py.is_file():
            return shlex.quote(str(train_py))
    return _TRAIN_PY_EXPR


def mmdet_train_command(backbone: Backbone, weights: Path) -> str:
    """mmdet's own ``tools/train.py`` command that fine-tunes from ``weights`` with our config.

    The config is the default one for the architecture (C4 for ResNets, where res5 is the RoI
    shared head's and loads from the same file); ViT sizes come from the export.
    """
    from lightly_matrix.transfer.configs import default_config, resolve_config

    config = resolve_config(default_config(backbone.architecture, demo=False))
    checkpoint = shlex.quote(str(weights.resolve()))
    options = [f"model.backbone.init_cfg.checkpoint={checkpoint}"]
    if config.stem.startswith("mask-rcnn_r") and "-c4" in config.stem:
        options.append(f"model.roi_head.shared_head.init_cfg.checkpoint={checkpoint}")
    if backbone.family == "vit":
        options += [
            f"model.backbone.{k}={v}" for k, v in backbone.backbone_cfg.items() if k != "type"
        ]
    return " ".join(
        ["python", mmdet_train_py(), shlex.quote(str(config)), "--cfg-options", *options]
    )


def run(args: argparse.Namespace) -> int:
    """Export, verify against the matching mmdet backbone (if installed), and write ``--out``."""
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
    print("  " + mmdet_train_command(backbone, Path(args.out)))
    return 0
