"""Read a pretrained backbone from any supported source into mmdet's key layout (torch only)."""

from __future__ import annotations

import hashlib
import pickle
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lightly_matrix.errors import UserError, first_line
from lightly_matrix.user_files import check_checkpoint_file
from lightly_matrix.utils.loop_progress import checkpoint_progress

#: Shown wherever a file needs ``--trust-pickle``: what the flag risks.
TRUST_PICKLE_RISK = "runs code from the file; only for files you made or trust"
#: Why a ResNet with another stem cannot go to mmdet, and what to do instead.
STEM_HINT = (
    "mmdet's ResNet has a 7x7 stride-2 stem with max-pool, so a CIFAR-stem backbone cannot be"
    " loaded without changing the detector's stem; pretrain with the ImageNet stem (--hp"
    " stem=imagenet, the default) for detection transfer; --format torchvision exports it for"
    " plain PyTorch"
)
# Lightly's nn.Sequential(*resnet.children()[:-1]): relu, maxpool, avgpool hold no weights.
_CHILDREN = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3", "7": "layer4"}
# (bottleneck?, blocks per stage) -> depth, as in torchvision and mmdet's ResNet.arch_settings.
_RESNET_DEPTHS: dict[tuple[bool, tuple[int, ...]], int] = {
    (False, (2, 2, 2, 2)): 18,
    (False, (3, 4, 6, 3)): 34,
    (True, (3, 4, 6, 3)): 50,
    (True, (3, 4, 23, 3)): 101,
    (True, (3, 8, 36, 3)): 152,
}
# ViT width -> timm size name and the depth it implies: the --arch example of a message.
_VIT_SIZES = {192: ("tiny", 12), 384: ("small", 12), 768: ("base", 12), 1024: ("large", 24)}
# Parts of a ViT checkpoint that a detector never uses: classifier, MAE-style mask token.
_WRAPPERS = re.compile(r"^(?:module\.|_orig_mod\.)+")  # DDP's and torch.compile's key prefixes
_VIT_DROPPED = re.compile(r"^(head\.|head_drop\.|fc_norm\.|mask_token$)")

#: ``meta['format']`` of the files :func:`~lightly_matrix.export.export_backbone` writes.
EXPORT_FORMAT = "lightly_matrix.mmdet_backbone"
#: ``meta['format_version']``: raised when the file's layout changes.
EXPORT_FORMAT_VERSION = 1


@dataclass
class Backbone:
    """A backbone state dict in mmdet's key layout, with what is known about it.

    Attributes:
        state_dict: Tensors keyed as the mmdet backbone names them (without ``backbone.``).
        architecture: ``resnet18``, ``resnet50``, ... or a timm ViT name.
        backbone_cfg: The mmdet backbone config the weights fit, e.g. ``{'type': 'ResNet', ...}``.
        meta: Plain-typed provenance (method, epochs, source, checksum, ...).
    """

    state_dict: dict[str, torch.Tensor]
    architecture: str
    backbone_cfg: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def family(self) -> str:
        """``'resnet'`` or ``'vit'``."""
        return "resnet" if self.backbone_cfg["type"] == "ResNet" else "vit"


def listing(names: Iterable[str], limit: int = 8) -> str:
    """Sorted names shortened for a one-line message: ``a, b, ... (3 more)``."""
    names = sorted(names)
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _top_level(keys: Iterable[str]) -> str:
    return listing({str(k).split(".", 1)[0] for k in keys}, limit=12)


def _is_state_dict(obj: Any) -> bool:
    """A non-empty mapping of names to tensors."""
    items = obj.items() if isinstance(obj, Mapping) else ()
    return bool(items) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in items)


def _under(sd: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Keys under exactly ``prefix`` (not ``teacher_backbone.``), stripped, DDP/compile undone."""
    keys = ((_WRAPPERS.sub("", str(k)), v) for k, v in sd.items())
    return {k[len(prefix) :]: v for k, v in keys if k.startswith(prefix)}


def check_weights(state_dict: Mapping[str, torch.Tensor]) -> None:
    """Refuse (UserError) a non-float (bar BN counters) or non-finite weight: mmengine loads it."""
    for key, value in state_dict.items():
        if not value.is_floating_point() and not key.endswith("num_batches_tracked"):
            raise UserError(
                f"weight {key!r} is {value.dtype}, not floating point: the file does not hold"
                " trained weights of a backbone; export another one"
            )
        bad = int((~torch.isfinite(value)).sum()) if value.is_floating_point() else 0
        if bad:
            raise UserError(
                f"weight {key!r} has {bad} NaN or infinite value(s) of {value.numel()}; the"
                " checkpoint is broken (diverged training?), export an earlier one"
            )


def read_checkpoint(path: str | Path, trust_pickle: bool = False) -> Any:
    """``torch.load`` with ``weights_only`` unless ``trust_pickle`` (a pickled module runs code)."""
    path = check_checkpoint_file(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except Exception as err:
        needed = re.search(r"GLOBAL ([\w.]+)", str(err))
        if isinstance(err, pickle.UnpicklingError) and needed and not trust_pickle:
            raise UserError(
                f"{path} holds pickled Python objects (it needs {needed.group(1)}), e.g. a whole"
                " nn.Module saved with torch.save(model), and is not loaded: save"
                f" model.state_dict() instead, or pass --trust-pickle, which {TRUST_PICKLE_RISK}"
            ) from err
        raise UserError(f"cannot read {path} as a torch checkpoint: {first_line(err)}") from err


def lightning_provenance(ckpt: Mapping[str, Any]) -> dict[str, Any]:
    """Plain-typed ``meta`` of a Lightning checkpoint: ``method``, ``epochs`` (finished),
    ``global_step``, ``backbone_name`` (``None`` where unknown) and ``source_format``."""
    hparams = ckpt.get("hyper_parameters")
    hparams = hparams if isinstance(hparams, Mapping) else {}
    progress = checkpoint_progress(ckpt)
    method, name = hparams.get("method"), hparams.get("backbone")
    return {
        "method": None if method is None else str(method),
        "epochs": progress.epochs_done,
        "global_step": progress.global_step,
        "source_format": "lightning",
        "backbone_name": name if isinstance(name, str) else None,
    }


def _resnet(sd: Mapping[str, torch.Tensor], name_hint: str | None, cifar_ok: bool) -> Backbone:
    """A torchvision/mmdet-named ResNet state dict (fc dropped) and its depth."""
    sd = {k: v for k, v in sd.items() if not k.startswith("fc.")}
    conv1 = sd.get("conv1.weight")
    if not cifar_ok and conv1 is not None and conv1.ndim == 4 and conv1.shape[-2:] != (7, 7):
        kh, kw = conv1.shape[-2:]
        raise UserError(
            f"the ResNet's conv1 is a {kh}x{kw} convolution (a CIFAR-style stem); " + STEM_HINT
        )
    bottleneck = "layer1.0.conv3.weight" in sd
    blocks = tuple(
        1 + max((int(m[1]) for k in sd if (m := re.match(rf"layer{i}\.(\d+)\.", k))), default=-1)
        for i in range(1, 5)
    )
    depth = _RESNET_DEPTHS.get((bottleneck, blocks))
    if depth is None:
        # Incomplete weights: the named (or smallest fitting) depth; the mmdet check lists the rest.
        hinted = re.fullmatch(r"resnet(\d+)", name_hint or "")
        layouts = [(d, n) for (b, n), d in _RESNET_DEPTHS.items() if b == bottleneck]
        fits = [d for d, n in layouts if all(x <= y for x, y in zip(blocks, n, strict=True))]
        depth = int(hinted[1]) if hinted else min(fits, default=None)
    if depth not in _RESNET_DEPTHS.values():
        raise UserError(
            f"the ResNet weights have an unknown layout ({'Bottleneck' if bottleneck else 'Basic'}"
            f" blocks per stage {list(blocks)}); mmdet's ResNet has depths 18, 34, 50, 101, 152"
        )
    if name_hint and name_hint.startswith("resnet") and name_hint != f"resnet{depth}":
        raise UserError(
            f"the checkpoint says its backbone is {name_hint!r} but its weights are a"
            f" resnet{depth}; the checkpoint is inconsistent, export another one"
        )
    return Backbone(sd, f"resnet{depth}", {"type": "ResNet", "depth": depth})


def _vit(sd: Mapping[str, torch.Tensor], name: str | None) -> Backbone:
    """A timm VisionTransformer state dict, with the timm model name and sizes it fits."""
    sd = {k: v for k, v in sd.items() if not _VIT_DROPPED.match(k)}
    proj = sd["patch_embed.proj.weight"]
    if proj.ndim != 4:
        raise UserError(
            f"patch_embed.proj.weight has shape {list(proj.shape)}; a timm ViT's is (width,"
            " channels, patch, patch): the file is not a ViT checkpoint"
        )
    embed_dim, in_chans, patch_size = (int(n) for n in proj.shape[:3])
    depth = 1 + max((int(m[1]) for k in sd if (m := re.match(r"blocks\.(\d+)\.", k))), default=-1)
    if not (name and name.startswith("vit")):
        # The number of heads only splits qkv and leaves no trace in the weights: never guess.
        size = _VIT_SIZES.get(embed_dim)
        example = f"vit_{size[0]}_patch{patch_size}_224" if size and size[1] == depth else "vit_..."
        named = f"{name!r} names no timm ViT; " if name else ""
        raise UserError(
            f"{named}the weights are a timm ViT (width {embed_dim}, depth {depth}, patch"
            f" {patch_size}) that does not record its timm name, and its number of heads is not in"
            f" the weights: pass --arch with the name it was trained as, e.g. --arch {example}"
        )
    cfg: dict[str, Any] = {"type": "TimmViTSimplePyramid", "patch_size": patch_size}
    reg = sd.get("reg_token")
    num_prefix = int("cls_token" in sd) + (reg.shape[1] if reg is not None and reg.ndim == 3 else 0)
    pos = sd.get("pos_embed")
    if pos is not None and pos.ndim == 3:
        # timm keeps the prefix tokens in pos_embed unless no_embed_class: try both.
        for grid in (int(pos.shape[1]) - num_prefix, int(pos.shape[1])):
            if grid > 0 and round(grid**0.5) ** 2 == grid:
                cfg["img_size"] = round(grid**0.5) * patch_size
                break
    if in_chans != 3:
        cfg["in_chans"] = in_chans
    cfg.update(final_norm="norm.weight" in sd, model_name=name)
    return Backbone({f"vit.{k}": v for k, v in sd.items()}, name, cfg)


def convert_state_dict(
    sd: Mapping[str, torch.Tensor],
    name_hint: str | None = None,
    allow_cifar_stem: bool = False,
    arch: str | None = None,
) -> Backbone:
    """A backbone state dict (DDP/compile prefixes removed) in mmdet's layout, as load_backbone."""
    sd = {_WRAPPERS.sub("", k): v for k, v in sd.items()}
    if sd and all(k[:1].isdigit() for k in sd):
        for key in sd:
            if key.split(".", 1)[0] not in _CHILDREN:
                raise UserError(
                    f"unexpected key {key!r} in a Lightly-style nn.Sequential ResNet (torchvision's"
                    " children hold weights at 0, 1 and 4-7; one was removed, e.g. the max-pool"
                    " of a CIFAR-style stem); " + STEM_HINT
                )
        renamed = {re.sub(r"^\d+", lambda m: _CHILDREN[m[0]], k): v for k, v in sd.items()}
        return _resnet(renamed, name_hint, allow_cifar_stem)
    if "conv1.weight" in sd and any(k.startswith("layer1.") for k in sd):
        return _resnet(sd, name_hint, allow_cifar_stem)
    vit = _under(sd, "vit.") or sd
    if "patch_embed.proj.weight" in vit and any(k.startswith("blocks.") for k in vit):
        return _vit(vit, name_hint or arch)
    raise UserError(
        f"no ResNet or ViT backbone found (top-level keys: {_top_level(sd)}); expected a Lightly"
        " nn.Sequential ResNet, a torchvision ResNet or a timm ViT"
    )


def load_backbone(
    src: str | Path | nn.Module | Mapping[str, Any],
    *,
    trust_pickle: bool = False,
    arch: str | None = None,
    allow_cifar_stem: bool = False,
) -> Backbone:
    """Load a pretrained backbone from any supported source and convert it to mmdet's layout.

    Args:
        src: A file (our Lightning checkpoint, an export, a state dict, a ``{'state_dict'|'model':
            ...}`` checkpoint, a pickled ``nn.Module``), a module or a state dict.
        trust_pickle: Allow a whole pickled ``nn.Module``; loading it runs code from the file.
        arch: The architecture of weights that do not record it (a timm ViT's name); it must
            agree with the checkpoint's record or a ResNet's depth.
        allow_cifar_stem: Accept a CIFAR-stem ResNet (for ``--format torchvision``).

    Returns:
        The :class:`Backbone`; ``meta['architecture_source']``: checkpoint, --arch or weights.

    Raises:
        UserError: Missing or unreadable file, no recognisable backbone, non-finite weights.
    """
    meta: dict[str, Any] = {"method": None, "epochs": None}
    obj: Any = src
    if isinstance(src, str | Path):
        obj = read_checkpoint(src, trust_pickle=trust_pickle)
        with open(src, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        meta.update(source=str(Path(src).resolve()), source_sha256=digest)
    if isinstance(obj, nn.Module):
        obj, meta["source_format"] = obj.state_dict(), "module"
    if not isinstance(obj, Mapping):
        raise UserError(f"expected a checkpoint dict or a state dict, found {type(obj).__name__}")
    own, name_hint = obj.get("meta"), None
    if isinstance(own, Mapping) and own.get("format") == EXPORT_FORMAT:
        # A file we exported before: keep its provenance, re-check its weights (read below).
        meta.update({k: v for k, v in own.items() if k not in ("source", "source_sha256")})
        meta["exported_from"] = own.get("source")
        name_hint = own.get("architecture") if isinstance(own.get("architecture"), str) else None
    if isinstance(obj.get("state_dict"), Mapping) and (
        "hyper_parameters" in obj or "pytorch-lightning_version" in obj
    ):
        # Exactly `backbone.`: teacher/momentum copies, heads and loss buffers are dropped.
        sd: Mapping[str, Any] = _under(obj["state_dict"], "backbone.")
        if not sd:
            raise UserError(
                "the Lightning checkpoint has no 'backbone.' weights (top-level keys: "
                f"{_top_level(obj['state_dict'])}); only the online backbone is exported"
            )
        hparams = obj.get("hyper_parameters")
        stem = hparams.get("stem", "imagenet") if isinstance(hparams, Mapping) else "imagenet"
        if stem != "imagenet" and not allow_cifar_stem:
            raise UserError(f"the checkpoint was pretrained with stem={stem!r}; " + STEM_HINT)
        meta.update(lightning_provenance(obj))
        name_hint = meta["backbone_name"]
    else:
        sd = next((obj[k] for k in ("state_dict", "model") if _is_state_dict(obj.get(k))), obj)
        # An mmdet/mmselfsup checkpoint of a whole model: its backbone only.
        sd = _under(sd, "backbone.") or sd
        meta.setdefault("source_format", "state_dict")
    if not _is_state_dict(sd):
        raise UserError(
            f"no backbone weights (names mapped to tensors) found (top-level keys:"
            f" {_top_level(obj)}); expected a Lightning checkpoint, a state dict, or a dict with"
            " 'state_dict' or 'model'"
        )
    if arch is not None and name_hint is not None and arch != name_hint:
        raise UserError(f"--arch {arch}: the checkpoint records {name_hint}; drop --arch")
    backbone = convert_state_dict(sd, name_hint, allow_cifar_stem, arch=arch)
    if arch is not None and backbone.architecture != arch:
        raise UserError(
            f"--arch {arch}: the weights are a {backbone.architecture} (a ResNet's depth is read"
            " from its weights); drop --arch"
        )
    check_weights(backbone.state_dict)
    meta["architecture"] = backbone.architecture
    meta["architecture_source"] = "checkpoint" if name_hint else ("--arch" if arch else "weights")
    backbone.meta = meta
    return backbone
