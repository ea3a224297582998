"""Read pretrained backbones in the formats we meet and rename them to mmdet's key layout.

Only torch is needed here; checking the result against an mmdet model lives in
:mod:`lightly_matrix.export.verify`.
"""

from __future__ import annotations

import hashlib
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lightly_matrix.errors import UserError, first_line
from lightly_matrix.user_files import check_checkpoint_file

#: ``meta['format']`` of the files written by :func:`lightly_matrix.export.export_backbone`.
EXPORT_FORMAT = "lightly_matrix.mmdet_backbone"
EXPORT_FORMAT_VERSION = 1

# Children of a torchvision ResNet as Lightly wraps it (nn.Sequential of children()[:-1]):
# 2 (relu), 3 (maxpool) and 8 (avgpool) hold no weights; fc is not part of the wrapper.
_LIGHTLY_RESNET_CHILDREN = {
    "0": "conv1",
    "1": "bn1",
    "4": "layer1",
    "5": "layer2",
    "6": "layer3",
    "7": "layer4",
}
# (bottleneck?, blocks per stage) -> depth, as in torchvision and mmdet's ResNet.arch_settings.
_RESNET_DEPTHS: dict[tuple[bool, tuple[int, ...]], int] = {
    (False, (2, 2, 2, 2)): 18,
    (False, (3, 4, 6, 3)): 34,
    (True, (3, 4, 6, 3)): 50,
    (True, (3, 4, 23, 3)): 101,
    (True, (3, 8, 36, 3)): 152,
}
# Standard ViT widths -> timm size name (with the depth that name implies), for state dicts
# that do not say which timm model they came from.
_VIT_SIZES = {192: ("tiny", 12), 384: ("small", 12), 768: ("base", 12), 1024: ("large", 24)}
# Wrapper prefixes that can sit in front of a whole state dict: DDP, torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
# Parts of a ViT checkpoint that a detector never uses: classifier, MAE-style mask token.
_VIT_DROPPED = re.compile(r"^(head\.|head_drop\.|fc_norm\.|mask_token$)")


@dataclass
class Backbone:
    """A backbone state dict in mmdet's key layout, with what is known about it.

    Attributes:
        state_dict: Tensors keyed as the mmdet backbone names them (without ``backbone.``).
        architecture: ``resnet18``, ``resnet50``, ... or a timm ViT name.
        backbone_cfg: Keyword arguments for the mmdet backbone (``type`` included) that the
            weights fit, e.g. ``{'type': 'ResNet', 'depth': 50}``.
        meta: Plain-typed provenance (method, epochs, source, checksum, ...).
    """

    state_dict: dict[str, torch.Tensor]
    architecture: str
    backbone_cfg: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def family(self) -> str:
        """``'resnet'`` or ``'vit'``."""
        return "vit" if self.backbone_cfg["type"] != "ResNet" else "resnet"


def sha256_of(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def _strip_wrappers(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove a DDP/compile prefix that every key carries."""
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if sd and all(k.startswith(prefix) for k in sd):
                sd = {k[len(prefix) :]: v for k, v in sd.items()}
                changed = True
    return sd


def _completed_epochs(ckpt: Mapping[str, Any]) -> int | None:
    """Epochs finished when the checkpoint was written.

    Lightning's loop progress counts them exactly; ``ckpt['epoch']`` is the epoch index in progress
    for end-of-epoch saves but already the next one for the end-of-training save, so it is only
    the fallback for checkpoints without loop state.
    """
    try:
        # `processed` counts an epoch as finished when its end hooks run (where our checkpoint
        # callback saves), `completed` only after them.
        current = ckpt["loops"]["fit_loop"]["epoch_progress"]["current"]
        return int(current.get("processed", current["completed"]))
    except (KeyError, TypeError):
        epoch = ckpt.get("epoch")
        return int(epoch) + 1 if isinstance(epoch, int) else None


def _select_prefix(sd: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Keys under exactly ``prefix`` (e.g. ``backbone.`` but not ``teacher_backbone.``)."""
    return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}


def _top_level(keys: Any, limit: int = 12) -> str:
    names = sorted({k.split(".", 1)[0] for k in keys})
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


#: Why a ResNet with another stem cannot go to mmdet, and what to do instead (for messages).
_STEM_HINT = (
    "mmdet's ResNet has a 7x7 stride-2 stem with max-pool, so a CIFAR-stem backbone cannot be"
    " loaded without changing the detector's stem; pretrain with the ImageNet stem (--hp"
    " stem=imagenet, the default) for detection transfer; --format torchvision exports it for"
    " plain PyTorch"
)


def _check_stem_kernel(sd: Mapping[str, torch.Tensor]) -> None:
    """Refuse a ResNet whose conv1 is not 7x7 (e.g. a CIFAR 3x3 stem), which mmdet cannot load.

    A max-pool replaced by ``nn.Identity`` holds no weights and cannot be detected here.
    """
    conv1 = sd.get("conv1.weight")
    if conv1 is not None and conv1.ndim == 4 and tuple(conv1.shape[-2:]) != (7, 7):
        kh, kw = (int(n) for n in conv1.shape[-2:])
        raise UserError(
            f"the ResNet's conv1 is a {kh}x{kw} convolution (a CIFAR-style stem); " + _STEM_HINT
        )


def _resnet(
    sd: dict[str, torch.Tensor], name_hint: str | None, allow_cifar_stem: bool = False
) -> Backbone:
    """A torchvision/mmdet-named ResNet state dict (fc dropped) and its depth."""
    sd = {k: v for k, v in sd.items() if not k.startswith("fc.")}
    if not allow_cifar_stem:
        _check_stem_kernel(sd)
    bottleneck = "layer1.0.conv3.weight" in sd
    blocks = []
    for stage in range(1, 5):
        indices = {int(m.group(1)) for k in sd if (m := re.match(rf"layer{stage}\.(\d+)\.", k))}
        blocks.append(max(indices) + 1 if indices else 0)
    depth = _RESNET_DEPTHS.get((bottleneck, tuple(blocks)))
    if depth is None:
        # Incomplete weights: take the named (or smallest fitting) depth, so that verification
        # lists exactly what is missing.
        hinted = re.fullmatch(r"resnet(\d+)", name_hint or "")
        fitting = [
            d
            for (b, layout), d in _RESNET_DEPTHS.items()
            if b == bottleneck and all(n <= m for n, m in zip(blocks, layout, strict=True))
        ]
        depth = int(hinted.group(1)) if hinted else min(fitting, default=None)
    if depth not in _RESNET_DEPTHS.values():
        raise UserError(
            f"the ResNet weights have an unknown layout "
            f"({'Bottleneck' if bottleneck else 'BasicBlock'} blocks per stage {blocks});"
            " mmdet's ResNet supports depths 18, 34, 50, 101, 152"
        )
    architecture = f"resnet{depth}"
    if name_hint and name_hint.startswith("resnet") and name_hint != architecture:
        raise UserError(
            f"the checkpoint says its backbone is {name_hint!r} but its weights are a"
            f" {architecture}; the checkpoint is inconsistent, export another one"
        )
    return Backbone(sd, architecture, {"type": "ResNet", "depth": depth})


def _vit(sd: dict[str, torch.Tensor], name_hint: str | None) -> Backbone:
    """A timm VisionTransformer state dict, and the timm model name and sizes it fits."""
    sd = {k: v for k, v in sd.items() if not _VIT_DROPPED.match(k)}
    proj = sd["patch_embed.proj.weight"]
    embed_dim, in_chans, patch_size = int(proj.shape[0]), int(proj.shape[1]), int(proj.shape[2])
    depth = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"blocks\.(\d+)\.", k)))
    num_prefix = int("cls_token" in sd) + (
        int(sd["reg_token"].shape[1]) if "reg_token" in sd else 0
    )
    cfg: dict[str, Any] = {"type": "TimmViTSimplePyramid", "patch_size": patch_size}
    if "pos_embed" in sd:
        tokens = int(sd["pos_embed"].shape[1])
        # timm keeps prefix tokens in pos_embed unless no_embed_class; try both.
        for grid_tokens in (tokens - num_prefix, tokens):
            side = round(grid_tokens**0.5)
            if side * side == grid_tokens:
                cfg["img_size"] = side * patch_size
                break
    if in_chans != 3:
        cfg["in_chans"] = in_chans
    cfg["final_norm"] = "norm.weight" in sd
    if not (name_hint and name_hint.startswith("vit")):
        # The number of heads only splits qkv, it leaves no trace in the weights: never guess it.
        size = _VIT_SIZES.get(embed_dim)
        example = f"vit_{size[0]}_patch{patch_size}_224" if size and size[1] == depth else "vit_..."
        raise UserError(
            f"the ViT weights (width {embed_dim}, depth {depth}) do not record which timm model"
            " they are, and its number of heads cannot be read from weights; pass --arch with the"
            f" timm model name it was trained as, e.g. --arch {example}"
        )
    model_name = name_hint
    cfg["model_name"] = model_name
    # Our mmdet wrapper holds the timm model as `vit`.
    return Backbone({f"vit.{k}": v for k, v in sd.items()}, model_name, cfg)


def _from_lightly_sequential(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in sd.items():
        child, _, rest = key.partition(".")
        if child not in _LIGHTLY_RESNET_CHILDREN:
            raise UserError(
                f"unexpected key {key!r} in a Lightly-style nn.Sequential ResNet (torchvision's"
                " children hold weights at 0, 1 and 4-7; one was removed, e.g. the max-pool of a"
                " CIFAR-style stem); " + _STEM_HINT
            )
        out[f"{_LIGHTLY_RESNET_CHILDREN[child]}.{rest}"] = value
    return out


def convert_state_dict(
    sd: Mapping[str, torch.Tensor], name_hint: str | None = None, allow_cifar_stem: bool = False
) -> Backbone:
    """Rename one backbone's state dict to mmdet's layout.

    Recognised layouts: Lightly ``nn.Sequential`` ResNets (``0.``, ``1.``, ``4.``-``7.``),
    torchvision/mmdet ResNets (``conv1.``, ``layer1.`` ...; ``fc.`` dropped), lightly's
    ``MaskedVisionTransformerTIMM`` (``vit.`` + timm keys) and plain timm ViTs; a DDP
    ``module.`` or ``torch.compile`` prefix is removed first.

    Args:
        sd: The backbone's tensors (no ``backbone.`` prefix).
        name_hint: Architecture name from the checkpoint, when it has one (a timm ViT name is
            needed to know its number of heads; ResNets are recognised from their weights).
        allow_cifar_stem: Accept a ResNet with a 3x3 conv1 (torchvision export; mmdet cannot
            load one).

    Returns:
        The converted :class:`Backbone` (``meta`` empty).

    Raises:
        UserError: The layout is not one of the above.
    """
    sd = _strip_wrappers(dict(sd))
    if sd and all(k[0].isdigit() for k in sd):
        return _resnet(_from_lightly_sequential(sd), name_hint, allow_cifar_stem)
    if "conv1.weight" in sd and any(k.startswith("layer1.") for k in sd):
        return _resnet(sd, name_hint, allow_cifar_stem)
    vit_sd = _select_prefix(sd, "vit.") or sd
    if "patch_embed.proj.weight" in vit_sd and any(k.startswith("blocks.") for k in vit_sd):
        return _vit(vit_sd, name_hint)
    raise UserError(
        "no ResNet or ViT backbone found (top-level keys: "
        f"{_top_level(sd)}); expected a Lightly nn.Sequential ResNet, a torchvision ResNet or a"
        " timm ViT"
    )


def _lightning_backbone(
    ckpt: Mapping[str, Any], allow_cifar_stem: bool = False
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The online backbone of one of our Lightning checkpoints and its provenance."""
    hparams = ckpt.get("hyper_parameters") or {}
    hparams = dict(hparams) if isinstance(hparams, Mapping) else vars(hparams)
    # Exactly `backbone.`: teacher/momentum copies, heads, decoders and loss buffers are dropped.
    sd = _select_prefix(ckpt["state_dict"], "backbone.")
    if not sd:
        raise UserError(
            "the Lightning checkpoint has no 'backbone.' weights (top-level keys: "
            f"{_top_level(ckpt['state_dict'])}); only the online backbone is exported"
        )
    # Our modules record the ResNet stem (checkpoints from before it existed used ImageNet's).
    stem = hparams.get("stem", "imagenet")
    if stem != "imagenet" and not allow_cifar_stem:
        raise UserError(f"the checkpoint was pretrained with stem={stem!r}; " + _STEM_HINT)
    meta = {
        "method": str(hparams["method"]) if "method" in hparams else None,
        "epochs": _completed_epochs(ckpt),
        "global_step": int(ckpt["global_step"])
        if isinstance(ckpt.get("global_step"), int)
        else None,
        "source_format": "lightning",
    }
    name = hparams.get("backbone")
    meta["backbone_name"] = str(name) if name is not None else None
    return sd, meta


#: Shown wherever a file needs ``--trust-pickle``: what the flag risks.
TRUST_PICKLE_RISK = "runs code from the file; only for files you made or trust"


def read_checkpoint(path: str | Path, trust_pickle: bool = False) -> Any:
    """``torch.load`` a user's file safely: tensors and plain Python values only.

    Our Lightning checkpoints, exported files and state dicts hold nothing else and load with
    ``weights_only=True``. A whole pickled ``nn.Module`` (``torch.save(model)``) can only be
    rebuilt by running code named in the file, so it needs ``trust_pickle``.

    Args:
        path: The file.
        trust_pickle: Unpickle arbitrary objects (``weights_only=False``); this runs code from
            the file, so only for files you made or trust.

    Returns:
        What the file holds.

    Raises:
        UserError: Missing or unreadable file, or pickled objects without ``trust_pickle``
            (one line naming the flag).
    """
    path = check_checkpoint_file(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as err:
        needed = re.search(r"GLOBAL ([\w.]+)", str(err))
        if trust_pickle or needed is None:  # not objects to trust: a broken file
            raise UserError(f"cannot read {path} as a torch checkpoint: {first_line(err)}") from err
        raise UserError(
            f"{path} holds pickled Python objects (it needs {needed.group(1)}), e.g. a whole"
            " nn.Module saved with"
            " torch.save(model), and is not loaded: save model.state_dict() instead, or pass"
            f" --trust-pickle, which {TRUST_PICKLE_RISK}"
        ) from err
    except Exception as err:
        raise UserError(f"cannot read {path} as a torch checkpoint: {first_line(err)}") from err


def check_finite(state_dict: Mapping[str, torch.Tensor]) -> None:
    """Fail on NaN or infinite values, naming the first tensor holding any.

    Raises:
        UserError: A floating-point tensor is not finite everywhere.
    """
    for key, value in state_dict.items():
        if isinstance(value, torch.Tensor) and (value.is_floating_point() or value.is_complex()):
            finite = torch.isfinite(value)
            if not bool(finite.all()):
                bad = int((~finite).sum())
                raise UserError(
                    f"weight {key!r} has {bad} NaN or infinite value(s) of {value.numel()}; the"
                    " checkpoint is broken (diverged training?), export an earlier one"
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
        src: A file (our Lightning checkpoint, a file written by :func:`export_backbone`, a saved
            state dict or ``nn.Module``, a ``{'state_dict'|'model': ...}`` checkpoint), an
            ``nn.Module`` or a state dict.
        trust_pickle: Allow a file holding a whole pickled ``nn.Module``; loading it runs code
            from the file (see :func:`read_checkpoint`).
        arch: The architecture (``resnet50``, a timm ViT name) for weights that do not record
            it; a plain timm ViT state dict needs it (its heads cannot be read from the weights).
            One recorded in the checkpoint, or a ResNet depth read from the weights, must agree.
        allow_cifar_stem: Accept a CIFAR-stem ResNet (for the torchvision export; mmdet's
            ResNet cannot load one).

    Returns:
        The converted :class:`Backbone` with ``meta`` filled in (``architecture_source``: where
        the architecture came from: ``checkpoint``, ``--arch`` or ``weights``).

    Raises:
        UserError: The file is missing, unreadable or needs ``trust_pickle``, holds no
            recognisable backbone, or holds NaN or infinite weights.
    """
    meta: dict[str, Any] = {"method": None, "epochs": None}
    if isinstance(src, str | Path):
        path = Path(src)
        obj = read_checkpoint(path, trust_pickle=trust_pickle)
        meta.update(source=str(path.resolve()), source_sha256=sha256_of(path))
    else:
        obj = src
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
        meta["source_format"] = "module"
    if not isinstance(obj, Mapping):
        raise UserError(f"expected a checkpoint dict or a state dict, found {type(obj).__name__}")

    name_hint = None
    own_meta = obj.get("meta") if isinstance(obj.get("meta"), Mapping) else None
    if own_meta is not None and own_meta.get("format") == EXPORT_FORMAT:
        # A file we exported before: keep its provenance, re-check its weights.
        sd = _select_prefix(obj["state_dict"], "backbone.")
        meta.update({k: v for k, v in own_meta.items() if k not in ("source", "source_sha256")})
        meta["exported_from"] = own_meta.get("source")
        name_hint = own_meta.get("architecture")
    elif isinstance(obj.get("state_dict"), Mapping) and (
        "hyper_parameters" in obj or "pytorch-lightning_version" in obj
    ):
        sd, lightning_meta = _lightning_backbone(obj, allow_cifar_stem)
        meta.update(lightning_meta)
        name_hint = lightning_meta["backbone_name"]
    else:
        for key in ("state_dict", "model"):
            if _is_state_dict(obj.get(key)):
                obj = obj[key]
                break
        if not _is_state_dict(obj):
            raise UserError(
                f"no state dict found (top-level keys: {_top_level(obj)}); expected a Lightning"
                " checkpoint, a state dict, or a dict with 'state_dict' or 'model'"
            )
        sd = _strip_wrappers(dict(obj))
        # mmdet/mmselfsup-style checkpoints of a whole model: keep its backbone only.
        sd = _select_prefix(sd, "backbone.") or sd
        meta.setdefault("source_format", "state_dict")
    if arch is not None and name_hint is not None and arch != name_hint:
        raise UserError(
            f"--arch {arch}: the checkpoint records its backbone as {name_hint}; drop --arch"
        )
    source = "checkpoint" if name_hint else ("--arch" if arch else "weights")
    # A ResNet's depth is read from its weights; --arch only names what a ViT cannot show.
    vit_arch = arch if arch is not None and arch.startswith("vit") else None
    backbone = convert_state_dict(sd, name_hint or vit_arch, allow_cifar_stem)
    if arch is not None and backbone.architecture != arch:
        raise UserError(f"--arch {arch}: the weights are a {backbone.architecture}")
    check_finite(backbone.state_dict)
    meta["architecture"] = backbone.architecture
    meta["architecture_source"] = source
    backbone.meta = meta
    return backbone
