"""``lightly-matrix configs``: list our mmdet configs, or write one out for mmdet's own tools.

    lightly-matrix configs                                  # names and protocols
    lightly-matrix configs mask-rcnn_r50-c4_ms-1x_coco      # the installed file's path
    lightly-matrix configs mask-rcnn_r50-c4_ms-1x_coco --out my_c4.py
    lightly-matrix configs mask-rcnn_r50-c4_ms-1x_coco --out c4_resolved.py --resolved

A copy's relative ``_base_`` points at the installed config; ``--resolved`` writes the whole
config (``mmengine.Config.dump``). An existing ``--out`` is never overwritten.
"""

from __future__ import annotations

import argparse
import re
import warnings
from pathlib import Path

from lightly_matrix.errors import UserError
from lightly_matrix.transfer.configs import (
    available_configs,
    config_dir,
    describe_config,
    resolve_config,
)
from lightly_matrix.user_files import check_writable
from lightly_matrix.utils.io import atomic_write_text

_RELATIVE_BASE = re.compile(r"""^_base_ = (["'])(\.{1,2}/[^"']+)\1""", re.MULTILINE)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``configs`` options."""
    add = parser.add_argument
    add("name", nargs="?", default=None, help="a config name; without one, all are listed")
    add("--out", default=None, help="write the config to this file (never overwritten)")
    add("--resolved", action="store_true",
        help="with --out: write the fully resolved config (no _base_; needs mmengine)")  # fmt: skip


def config_text(path: Path, resolved: bool = False) -> str:
    """A config's text that loads from any directory (``resolved``: all bases merged in)."""
    if resolved:
        from lightly_matrix.export.verify import require_mmdet

        require_mmdet("--resolved")
        from mmengine.config import Config

        with warnings.catch_warnings():  # mmengine's pkg_resources import, for `mmdet::` bases
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
            return str(Config.fromfile(str(path)).dump())
    # Lint directives are for this repository, not for the user's copy.
    lines = path.read_text().splitlines(keepends=True)
    text = "".join(line for line in lines if not line.startswith("# ruff:")).rstrip() + "\n"

    def absolute(match: re.Match[str]) -> str:
        return f'_base_ = "{(path.parent / match.group(2)).resolve()}"'

    return _RELATIVE_BASE.sub(absolute, text)


def write_new(out: Path, text: str) -> None:
    """Write ``text`` to ``out``, which must not exist yet; a failed write leaves no ``out``."""
    check_writable(out.parent, f"--out {out}")
    try:
        atomic_write_text(out, text, replace=False)
    except FileExistsError as err:
        what = "is a folder" if out.is_dir() else "already exists"
        raise UserError(f"{out} {what}; not overwriting it (choose another --out)") from err
    except OSError as err:  # read-only place, a file in the path, a full disk
        raise UserError(
            f"cannot write {out}: {err.strerror or type(err).__name__}; choose another --out"
        ) from None


def run(args: argparse.Namespace) -> int:
    """List the configs, print one's path, or write it out."""
    if args.name is None:
        if args.out or args.resolved:
            raise UserError(
                "--out and --resolved need a config name (see `lightly-matrix configs`)"
            )
        names = available_configs()
        width = max(len(n) for n in names)
        for name in names:
            print(f"{name:<{width}}  {describe_config(resolve_config(name))}")
        print(f"\n(in {config_dir()}; `lightly-matrix configs NAME --out FILE` writes one out)")
        return 0
    path = resolve_config(args.name)
    if args.out is None:
        if args.resolved:
            raise UserError("--resolved needs --out FILE")
        print(path)
        return 0
    out = Path(args.out)
    if out.exists():
        what = "is a folder" if out.is_dir() else "already exists"
        raise UserError(f"{out} {what}; not overwriting it (choose another --out)")
    write_new(out, config_text(path, resolved=args.resolved))
    print(f"wrote {out} ({'resolved ' if args.resolved else ''}{path.stem})")
    return 0
