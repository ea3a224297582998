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
    add = parser.add_argument
    # fmt: off
    add("checkpoint", nargs="?", default=None,
        help="training checkpoint or exported backbone; none: random init (baseline)")
    add("--config", default=None,
        help="a config name (lightly-matrix configs) or path; default: the --protocol's")
    add("--protocol", choices=list(PROTOCOLS), default=None,
        help="the published COCO tables to compare with (ResNets): matrix_ssl = R50-C4 1x,"
        " MoCo's recipe; corinfomax = R50-C4 2x; mmselfsup_fpn = R50-FPN 1x of mmselfsup."
        f" Default: {DEFAULT_PROTOCOL}")
    add("--demo", action="store_true",
        help="generated coloured-shapes data and the small R18-FPN demo schedule (CPU, minutes)")
    add("--coco-root", default=None,
        help="COCO in the standard layout (annotations/instances_{train,val}2017.json, train2017/,"
        f" val2017/); default data/coco, or {DEMO_DATA_ROOT} (generated) with --demo")
    add("--arch", default=None,
        help="the checkpoint's architecture where it does not record it, as for export")
    add("--trust-pickle", action="store_true",
        help="also read a pickled nn.Module (runs code from the file: only files you trust)")
    add("--gpus", type=positive_int, default=1,
        help="processes per node (torchrun), one per CUDA GPU")
    add("--allow-cpu-ddp", action="store_true",
        help="debugging only: --gpus/--nnodes as CPU processes (gloo) without CUDA")
    add("--nnodes", type=positive_int, default=1, help="nodes (torchrun, multi-node)")
    add("--node-rank", type=int, default=0, help="this node's rank (torchrun)")
    add("--master-addr", default="127.0.0.1", help="rank 0's address (torchrun)")
    add("--master-port", type=int, default=29500, help="rank 0's port (torchrun)")
    add("--work-dir", default=None,
        help="output folder (never one holding results); default work_dirs/transfer/CONFIG/TIME")
    add("--max-iters", type=int, default=None,
        help="train this many iterations instead of the config's schedule (lr steps scaled)")
    add("--batch-size", type=int, default=None, help="images per GPU (default: the config's)")
    add("--no-auto-scale-lr", action="store_true",
        help="keep the config's lr and iterations instead of scaling them with the total batch")
    add("--val-interval", type=int, default=0,
        help="also validate every N epochs (iterations) while training; 0: only the final test")
    add("--seed", type=int, default=0, help="random seed of the fine-tuning")
    add("--no-report", action="store_true", help="do not write WORK_DIR/report.html")
    add("--cfg-options", nargs="+", default=None, metavar="KEY=VALUE",
        help="override config entries (e.g. train_dataloader.num_workers=4); not output paths")
    add("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none",
        help="set by the torchrun launch (or slurm/mpi jobs); leave it for --gpus")
    # fmt: on


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
