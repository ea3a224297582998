"""The ``lightly-matrix transfer`` options, and ``main`` (``python -m lightly_matrix.transfer``)."""

from __future__ import annotations

import argparse
import sys

from lightly_matrix.errors import UserError
from lightly_matrix.transfer.checks import DEMO_DATA_ROOT
from lightly_matrix.transfer.configs import DEFAULT_PROTOCOL, PROTOCOLS
from lightly_matrix.utils.checks import positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``transfer`` options."""
    parser.add_argument(
        "checkpoint",
        nargs="?",
        default=None,
        help="training checkpoint or exported backbone; none: random init (baseline)",
    )
    parser.add_argument(
        "--config",
        default=None,
        help="a config name (lightly-matrix configs) or path; default: the --protocol's",
    )
    parser.add_argument(
        "--protocol",
        choices=list(PROTOCOLS),
        default=None,
        help="the published COCO tables to compare with (ResNets): matrix_ssl = R50-C4 1x,"
        " MoCo's recipe; corinfomax = R50-C4 2x; mmselfsup_fpn = R50-FPN 1x of mmselfsup."
        f" Default: {DEFAULT_PROTOCOL}",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="generated coloured-shapes data and the small R18-FPN demo schedule (CPU, minutes)",
    )
    parser.add_argument(
        "--coco-root",
        default=None,
        help="COCO in the standard layout (annotations/instances_{train,val}2017.json, train2017/,"
        f" val2017/); default data/coco, or {DEMO_DATA_ROOT} (generated) with --demo",
    )
    parser.add_argument(
        "--arch",
        default=None,
        help="the checkpoint's architecture where it does not record it, as for export",
    )
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="also read a pickled nn.Module (runs code from the file: only files you trust)",
    )
    parser.add_argument(
        "--gpus",
        type=positive_int,
        default=1,
        help="processes per node (torchrun), one per CUDA GPU",
    )
    parser.add_argument(
        "--allow-cpu-ddp",
        action="store_true",
        help="debugging only: --gpus/--nnodes as CPU processes (gloo) without CUDA",
    )
    parser.add_argument(
        "--nnodes", type=positive_int, default=1, help="nodes (torchrun, multi-node)"
    )
    parser.add_argument("--node-rank", type=int, default=0, help="this node's rank (torchrun)")
    parser.add_argument("--master-addr", default="127.0.0.1", help="rank 0's address (torchrun)")
    parser.add_argument("--master-port", type=int, default=29500, help="rank 0's port (torchrun)")
    parser.add_argument(
        "--work-dir",
        default=None,
        help="output folder (never one holding results); default work_dirs/transfer/CONFIG/TIME",
    )
    parser.add_argument(
        "--max-iters",
        type=int,
        default=None,
        help="train this many iterations instead of the config's schedule (lr steps scaled)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help="images per GPU (default: the config's)"
    )
    parser.add_argument(
        "--no-auto-scale-lr",
        action="store_true",
        help="keep the config's lr and iterations instead of scaling them with the total batch",
    )
    parser.add_argument(
        "--val-interval",
        type=int,
        default=0,
        help="also validate every N epochs (iterations) while training; 0: only the final test",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed of the fine-tuning")
    parser.add_argument(
        "--no-report", action="store_true", help="do not write WORK_DIR/report.html"
    )
    parser.add_argument(
        "--cfg-options",
        nargs="+",
        default=None,
        metavar="KEY=VALUE",
        help="override config entries (e.g. train_dataloader.num_workers=4); not output paths",
    )
    parser.add_argument(
        "--launcher",
        choices=["none", "pytorch", "slurm", "mpi"],
        default="none",
        help="set by the torchrun launch (or slurm/mpi jobs); leave it for --gpus",
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m lightly_matrix.transfer`` (the torchrun entry point)."""
    import lightly_matrix.transfer as package
    from lightly_matrix.transfer.launch import run

    parser = argparse.ArgumentParser(
        prog="lightly-matrix transfer",
        description=package.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except UserError as err:
        print(f"lightly-matrix transfer: error: {err}", file=sys.stderr)
        return 2
