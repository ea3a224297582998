"""The ``lightly-matrix`` command line.

Each sub-command's module (:data:`SUBCOMMANDS`) has ``add_arguments(parser)`` and ``run(args)``;
only the one run is imported, so ``--help`` and ``--version`` import neither torch nor mmdet.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from lightly_matrix import __version__
from lightly_matrix.errors import UserError

__all__ = ["SUBCOMMANDS", "UserError", "build_parser", "main"]

# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "pretrain": ("lightly_matrix.pretrain", "self-supervised pretraining on digits or images"),
    "export": ("lightly_matrix.export_cli", "export a backbone for mmdet, torchvision or timm"),
    "transfer": ("lightly_matrix.transfer", "Mask R-CNN fine-tuning and COCO evaluation (mmdet)"),
    "configs": ("lightly_matrix.transfer.configs", "list or write out the shipped mmdet configs"),
    "report": ("lightly_matrix.report", "write RUN/report.html: probes, spectrum, curves, AP"),
    "check-coco": ("lightly_matrix.transfer.coco_check", "check a COCO dataset before training"),
}


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lightly-matrix",
        description="Matrix-information self-supervised learning (Matrix-SSL, M-MAE, CorInfoMax) "
        "for Lightly, with MMDetection transfer to MS-COCO.",
    )
    parser.add_argument("--version", action="version", version=f"lightly-matrix {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((a for a in argv if a in SUBCOMMANDS), None)
    for name, (_, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            importlib.import_module(SUBCOMMANDS[name][0]).add_arguments(sp)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(importlib.import_module(SUBCOMMANDS[args.command][0]).run(args) or 0)
    except UserError as err:
        print(f"lightly-matrix {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lightly-matrix {args.command}: interrupted", file=sys.stderr)
        return 130
