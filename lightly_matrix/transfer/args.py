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
        help="training checkpoint (exported on the fly) or an exported backbone file; without one"
        " the backbone is randomly initialised (baseline)",
    )
    parser.add_argument(
        "--config",
        default=None,
        help="config name in mmdet_configs/ (e.g. mask-rcnn_r50_fpn_ms-1x_coco) or a path;"
        " default: the --protocol's config for the checkpoint's architecture",
    )
    parser.add_argument(
        "--protocol",
        choices=list(PROTOCOLS),
        default=None,
        help="the published COCO tables to compare with (ResNets): matrix_ssl = Mask R-CNN R50-C4"
        " 1x in MoCo's Detectron2 recipe (MoCo, SimSiam, MEC, Matrix-SSL tables); corinfomax ="
        " R50-C4 2x (coco_R_50_C4_2x_moco.yaml, which the CorInfoMax code runs); mmselfsup_fpn ="
        f" R50-FPN 1x of mmselfsup's model zoo. Default: {DEFAULT_PROTOCOL}",
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
        help="the checkpoint's architecture where it does not record it (a plain timm ViT state"
        " dict: its timm model name), as for lightly-matrix export",
    )
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        # The same words as lightly_matrix.export.safe_load.TRUST_PICKLE_RISK (torch-free here).
        help="also read a checkpoint holding a whole pickled nn.Module (torch.save(model)); this"
        " runs code from the file; only for files you made or trust",
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
        help="debugging only: let --gpus/--nnodes start CPU processes (gloo) where there is no"
        " CUDA GPU",
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
        help="output directory; default work_dirs/transfer/CONFIG/TIMESTAMP. One holding results is"
        " refused",
    )
    parser.add_argument(
        "--max-iters",
        type=int,
        default=None,
        help="train this many iterations instead of the config's schedule (lr steps scaled to"
        " fit; warm-up and precise-BN batches capped)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help="images per GPU (default: the config's)"
    )
    parser.add_argument(
        "--no-auto-scale-lr",
        action="store_true",
        help="keep the config's lr (and the iterations of iteration-based configs) instead of"
        " scaling them with the total batch (base batch 16)",
    )
    parser.add_argument(
        "--val-interval",
        type=int,
        default=0,
        help="also validate every N epochs (iterations for the iteration-based C4 configs and"
        " with --max-iters) while training; 0 (default): only the final test",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed of the fine-tuning")
    parser.add_argument(
        "--no-report",
        action="store_true",
        help="do not write WORK_DIR/report.html (AP per category and size, losses, detections)",
    )
    parser.add_argument(
        "--cfg-options",
        nargs="+",
        default=None,
        metavar="KEY=VALUE",
        help="override config entries, as mmdet's tools do (e.g. train_dataloader.num_workers=4)",
    )
    parser.add_argument(
        "--launcher",
        choices=["none", "pytorch", "slurm", "mpi"],
        default="none",
        help="set by the torchrun launch (or for slurm/mpi jobs); leave it for --gpus",
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
