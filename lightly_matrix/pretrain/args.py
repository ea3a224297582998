"""The ``lightly-matrix pretrain`` options and their checks (no torch import here: ``--help`` is
fast, and every value is checked before a folder is made)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from lightly_matrix.errors import UserError
from lightly_matrix.registry import method_names
from lightly_matrix.user_files import path_text

PRECISIONS = ("32-true", "32", "16-mixed", "bf16-mixed", "64-true")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the ``pretrain`` options to ``parser``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "Run folder: last.ckpt (rewritten atomically at epoch ends and --checkpoint-every-*), "
        "metrics.json (probe top-1 of the frozen backbone), spectrum.json, csv/ and tensorboard/ "
        "logs, report.html. Ctrl-C or SIGTERM saves and prints the resume command. "
        "Settings: flags > --hp > --preset > method defaults."
    )
    path = path_text
    add = parser.add_argument_group("what to train").add_argument
    add("--method", metavar="{" + ",".join(method_names()) + "}", help="pretraining method")
    add("--data", type=path, help="'digits' (offline, default) or an image folder")
    add("--backbone", help="resnet18, resnet50 or a timm ViT name (e.g. vit_tiny_patch16_224)")
    add("--preset", help="named settings of a paper run (see --list-presets)")
    add("--list-presets", action="store_true", help="print the presets and exit")
    add("--dry-run", action="store_true", help="print the resolved run as JSON; write nothing")
    add("--hp", action="append", default=[], metavar="KEY=VALUE", help="e.g. --hp alpha=500")
    add("--skip-bad-images", action="store_true", help="leave out files that cannot be decoded")

    add = parser.add_argument_group("training").add_argument
    add("--epochs", type=int)
    add("--batch-size", type=int, help="GLOBAL batch, over all devices and nodes (as the papers)")
    add("--image-size", type=int)
    add("--optimizer", help="sgd, lars or adamw")
    add("--lr", type=float, help="per 256 images, or absolute where lr_scaling=none (CorInfoMax)")
    add("--weight-decay", type=float)
    add("--warmup-epochs", type=float)
    add("--transform", help="the views (default: the method's paper views; see --dry-run)")
    add("--crop-min-scale", type=float, help="smallest random-resized-crop scale of every view")
    add("--seed", type=int, help="random seed of the run (default 0)")
    add("--num-workers", type=int, help="loader workers per device (default: 0 on digits, cores-1)")
    add("--limit-train-batches", type=float, help="batches per epoch (int) or a fraction (< 1)")

    add = parser.add_argument_group("hardware").add_argument
    add("--devices", type=int, default=1, help="devices (GPUs or CPU processes) per node")
    add("--num-nodes", type=int, default=1)
    add("--accelerator", default="auto", choices=("auto", "cpu", "gpu", "cuda", "mps"))
    add("--precision", choices=PRECISIONS, help="e.g. 16-mixed on GPUs (default 32-true)")

    add = parser.add_argument_group("checkpoints and resuming").add_argument
    add("--out", type=path, help="run folder (default runs/<method>); empty unless --resume")
    add("--resume", metavar="RUN_OR_CKPT", type=path, help="continue a run: its folder or a .ckpt")
    add(
        "--checkpoint-every-steps", type=int, default=0, metavar="N", help="also save every N steps"
    )
    add(
        "--checkpoint-every-minutes",
        type=float,
        default=30.0,  # multi-hour GPU runs lose at most this much training
        metavar="M",
        help="also save after M minutes (default %(default)g; 0: off)",
    )
    add("--keep-every", type=int, default=0, metavar="N", help="keep every Nth epoch's checkpoint")

    add = parser.add_argument_group("evaluation and logging").add_argument
    add("--eval-every", type=int, default=0, metavar="N", help="also evaluate every N epochs")
    add("--no-eval", action="store_true", help="skip the frozen-feature evaluation")
    add("--eval-data", type=path, help="labelled folder to score the probes on (default: 30%%)")
    add("--eval-split", choices=("test", "val"), help="digits: 'val' scores 252 held-out images")
    add("--eval-max-images", type=int, default=10000, help="images the probes use (>= 20)")
    add("--log-every-n-steps", type=int)
    add("--no-progress", action="store_true", help="no progress bar (for logs and batch jobs)")
    add("--no-report", action="store_true", help="do not write OUT/report.html at the end")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)


#: Flag -> its lowest value (``lr``: above it); every value must also be finite.
_MINIMA = {
    **dict.fromkeys(("lr", "weight_decay", "warmup_epochs", "num_workers", "keep_every"), 0),
    **dict.fromkeys(("eval_every", "checkpoint_every_steps", "checkpoint_every_minutes"), 0),
    # --epochs, --batch-size and --image-size: RunConfig.check (a preset may set them too).
    **dict.fromkeys(("log_every_n_steps", "devices", "num_nodes"), 1),
    # The probes fit on 70% of them and need two classes on each side.
    "eval_max_images": 20,
}


def validate_args(args: argparse.Namespace) -> None:
    """Checks every value that can be checked without torch, before anything is written."""
    names = ", ".join(method_names())
    _check(args.method is not None, f"--method is required; choose one of: {names}")
    _check(args.method in method_names(), f"unknown method {args.method!r}; choose one of: {names}")
    for key, low in _MINIMA.items():
        value, flag, inclusive = getattr(args, key), "--" + key.replace("_", "-"), key != "lr"
        _check(
            value is None or math.isfinite(value), f"{flag} must be a finite number, got {value}"
        )
        ok = value is None or value > low or (inclusive and value == low)
        _check(ok, f"{flag} must be {'>=' if inclusive else '>'} {low}, got {value}")
    _check(not args.no_eval or not args.eval_every, "--no-eval turns --eval-every off; drop one")
    # Lightning replaces a seed outside numpy's range by a random one: the run would not repeat.
    seed = args.seed
    _check(seed is None or 0 <= seed < 2**32, f"--seed must be in [0, 2**32 - 1], got {seed}")
    limit = args.limit_train_batches
    _check(
        limit is None or (math.isfinite(limit) and limit > 0 and (limit < 1 or limit.is_integer())),
        "--limit-train-batches must be a whole number of batches >= 1 or a fraction in (0, 1), "
        f"got {limit}",
    )
    digits = args.data in (None, "digits")
    _check(
        args.eval_split in (None, "test") or digits,
        "--eval-split val is for --data digits; for an image folder pass --eval-data FOLDER",
    )
    _check(
        args.eval_data is None or not digits,
        "--eval-data is for an image-folder --data; digits scores the probes on its own test split"
        " (or --eval-split val)",
    )
    for flag, value, fix in (
        ("--data", None if digits else args.data, "pass 'digits' or a folder of images"),
        ("--eval-data", args.eval_data, "pass a folder with the class sub-folders of --data"),
    ):
        if value is not None:
            what = "is not a folder" if Path(value).exists() else "does not exist"
            _check(Path(value).is_dir(), f"{flag} {value!r} {what}; {fix}")
    _check(
        args.out is None or not Path(args.out).exists() or Path(args.out).is_dir(),
        f"--out {args.out!r} is a file, not a folder; choose a folder for the run",
    )
