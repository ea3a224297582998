"""Where our mmdet configs live, which one a backbone gets, and ``lightly-matrix configs``, which
lists them or writes one out for mmdet's own tools (docs/transfer.md); it does not import mmdet."""

from __future__ import annotations

import argparse
import importlib.resources
import importlib.util
import itertools
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightly_matrix.errors import UserError, first_line
from lightly_matrix.user_files import check_writable, path_kind
from lightly_matrix.utils.io import atomic_write_text

CONFIG_PACKAGE = "lightly_matrix.mmdet_configs"
#: ``--protocol`` -> our config per architecture: matrix_ssl: R50-C4 1x (MoCo's Detectron2 code);
#: corinfomax: R50-C4 2x (coco_R_50_C4_2x_moco.yaml); mmselfsup_fpn: mmselfsup's R50-FPN 1x.
PROTOCOLS = {
    protocol: {f"resnet{depth}": f"mask-rcnn_r{depth}{layout}_coco" for depth in (50, 18)}
    for protocol, layout in (
        ("matrix_ssl", "-c4_ms-1x"),
        ("corinfomax", "-c4_ms-2x"),
        ("mmselfsup_fpn", "_fpn_ms-1x"),
    )
}
DEFAULT_PROTOCOL = "matrix_ssl"
DEFAULT_CONFIGS = {**PROTOCOLS[DEFAULT_PROTOCOL], "vit": "mask-rcnn_vit-b16_sfp_ms-1x_coco"}
DEMO_CONFIG = "mask-rcnn_r18_fpn_demo_coco-shapes"


def config_dir() -> Path:
    """The folder holding our configs (installed package, or the checkout's ``mmdet_configs/``)."""
    try:
        folder = Path(str(importlib.resources.files(CONFIG_PACKAGE)))
    except ModuleNotFoundError:  # a checkout on PYTHONPATH without `pip install`
        folder = Path(__file__).resolve().parents[2] / "mmdet_configs"
    if folder.is_dir():
        return folder
    raise UserError(
        "lightly_matrix's mmdet configs are missing from this installation; reinstall it"
        ' (pip install "lightly-matrix[mmdet]")'
    )


def available_configs() -> list[str]:
    """Names of our configs (file names without ``.py``)."""
    return [p.stem for p in sorted(config_dir().glob("*.py")) if not p.name.startswith("_")]


def describe_config(path: Path) -> str:
    """The first sentence of the comment a config starts with (which protocol it is)."""
    lines = path.read_text().splitlines()
    head = itertools.takewhile(lambda x: x.startswith("#") and not x.startswith("# ruff:"), lines)
    first, end, _ = " ".join(line.lstrip("#").strip() for line in head).partition(". ")
    return first + "." if end else first


def resolve_config(name: str) -> Path:
    """A config path from one of our names (``.py`` optional) or a file path."""
    path = Path(name)
    if path.is_file():
        if path.suffix != ".py":
            raise UserError(f"config {name!r} is not a .py file; pass an mmdet config file")
        return path.resolve()
    candidate = config_dir() / (name if name.endswith(".py") else f"{name}.py")
    if candidate.is_file() and not candidate.name.startswith("_"):
        return candidate
    raise UserError(
        f"config {name!r} not found; use a file or one of: {', '.join(available_configs())}"
    )


def config_protocol(name: str) -> str | None:
    """The ``--protocol`` a config (name or path) belongs to, ``None`` for the others."""
    stem = Path(name).name.removesuffix(".py")
    return next((p for p, configs in PROTOCOLS.items() if stem in configs.values()), None)


def default_config(architecture: str | None, demo: bool, protocol: str | None = None) -> str:
    """The config name for an architecture (``None``: random init) in ``protocol``."""
    if protocol is not None and protocol not in PROTOCOLS:
        raise UserError(f"unknown protocol {protocol!r}; use one of: {', '.join(PROTOCOLS)}")
    if demo:
        if protocol is not None:
            raise UserError("--demo has its own small config; leave out --protocol")
        if architecture is not None and not architecture.startswith("resnet"):
            raise UserError(f"the demo is a ResNet Mask R-CNN; a {architecture} needs --config")
        return DEMO_CONFIG
    configs = PROTOCOLS[protocol] if protocol else DEFAULT_CONFIGS
    key = "vit" if (architecture or "").startswith("vit") else architecture or "resnet50"
    if key not in configs:
        what = f"--protocol {protocol} (ResNet Mask R-CNNs) has" if protocol else "we have"
        raise UserError(
            f"{what} no default config for a {architecture}; pass --config (one of: "
            f"{', '.join(available_configs())})"
        )
    return configs[key]


def mmdet_train_py() -> str:
    """Path of the ``tools/train.py`` that the mmdet wheel ships (``mmdet/.mim/tools``)."""
    try:
        spec = importlib.util.find_spec("mmdet")
    except (ImportError, ValueError):
        spec = None
    train_py = Path(spec.origin).parent / ".mim/tools/train.py" if spec and spec.origin else None
    if train_py is not None and train_py.is_file():
        return shlex.quote(str(train_py))
    return (  # a shell expression for where it will be
        "$(python -c 'import mmdet,os;print(os.path.dirname(mmdet.__file__))')/.mim/tools/train.py"
    )


def mmdet_train_command(architecture: str, backbone_cfg: Mapping[str, Any], weights: Path) -> str:
    """mmdet's ``tools/train.py`` command fine-tuning from exported ``weights`` (C4: res5 too)."""
    config = resolve_config(default_config(architecture, demo=False))
    checkpoint = shlex.quote(str(weights.resolve()))
    options = [f"model.backbone.init_cfg.checkpoint={checkpoint}"]
    if config.stem.startswith("mask-rcnn_r") and "-c4" in config.stem:
        options.append(f"model.roi_head.shared_head.init_cfg.checkpoint={checkpoint}")
    if backbone_cfg.get("type") != "ResNet":
        options += [f"model.backbone.{k}={v}" for k, v in backbone_cfg.items() if k != "type"]
    return f"python {mmdet_train_py()} {shlex.quote(str(config))} --cfg-options {' '.join(options)}"


_RELATIVE_BASE = re.compile(r"""^_base_ = (["'])(\.{1,2}/[^"']+)\1""", re.MULTILINE)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``configs`` options."""
    add = parser.add_argument
    add("name", nargs="?", help="a config name; without one, all are listed")
    add("--out", help="write the config to this file (never overwritten)")
    add("--resolved", action="store_true",
        help="with --out: write the fully resolved config (no _base_; needs mmengine)")  # fmt: skip


def read_config(path: Path) -> Any:
    """mmengine's ``Config`` of a file; one the user must fix is a one-line ``UserError``."""
    from mmengine.config import Config

    try:
        return Config.fromfile(str(path))
    except Exception as err:  # the file is the user's Python: any error in it is theirs to fix
        raise UserError(
            f"config {path}: mmengine cannot read it ({type(err).__name__}: {first_line(err)});"
            " fix the file or use one of ours (see `lightly-matrix configs`)"
        ) from None


def config_text(path: Path, resolved: bool = False) -> str:
    """A config's text that loads from any directory (``resolved``: all bases merged in)."""
    if resolved:
        from lightly_matrix.export import require_mmdet

        require_mmdet("--resolved")
        return str(read_config(path).dump())
    # Lint directives are for this repository, not for the user's copy.
    lines = path.read_text().splitlines(keepends=True)
    text = "".join(line for line in lines if not line.startswith("# ruff:")).rstrip() + "\n"
    return _RELATIVE_BASE.sub(lambda m: f'_base_ = "{(path.parent / m[2]).resolve()}"', text)


def run(args: argparse.Namespace) -> int:
    """List the configs, print one's path, or write it out (never over an existing file)."""
    if args.name is None:
        if args.out or args.resolved:
            raise UserError("--out and --resolved need a config name (`lightly-matrix configs`)")
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
    if Path(args.out).suffix != ".py":  # mmengine reads a config by its suffix; ours are Python
        raise UserError(f"--out {args.out!r} is not a .py file name; choose another --out, FILE.py")
    out, text = Path(args.out), config_text(path, resolved=args.resolved)
    check_writable(out.parent, f"--out {out}")
    try:  # a failed write leaves no ``out``
        atomic_write_text(out, text, replace=False)
    except FileExistsError as err:
        kind = path_kind(out) or "a dangling symbolic link"  # os.stat follows links
        what = "already exists" if kind == "a file" else f"is {kind}"
        raise UserError(f"{out} {what}; not overwriting it (choose another --out)") from err
    except OSError as err:  # read-only place, a file in the path, a full disk
        raise UserError(
            f"cannot write {out}: {err.strerror or type(err).__name__}; choose another --out"
        ) from None
    print(f"wrote {out} ({'resolved ' if args.resolved else ''}{path.stem})")
    return 0
