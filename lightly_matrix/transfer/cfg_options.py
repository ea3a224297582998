"""``--cfg-options`` checked against the config: a mistyped key is an error, not a silent no-op
(mmengine's ``Config.merge_from_dict`` adds any key)."""

from __future__ import annotations

import argparse
import copy
import difflib
import functools
import inspect
import os
from typing import Any

from lightly_matrix.errors import UserError, first_line
from lightly_matrix.utils.checks import is_number

# Keys that builders consume before the constructor sees the rest.
_BUILDER_KEYS = {"type", "_delete_", "_scope_", "requires_grad", "paramwise_cfg", "constructor"}
# What mmengine's build_dataloader takes besides torch DataLoader's own arguments.
_DATALOADER_KEYS = frozenset(
    {"dataset", "sampler", "batch_sampler", "collate_fn", "worker_init_fn", "num_batch_per_epoch"}
)
# Top-level sections without ``type`` that mmengine's Runner reads key by key.
_SECTION_KEYS = {
    "randomness": frozenset({"seed", "deterministic", "diff_rank_seed"}),
    "env_cfg": frozenset({"cudnn_benchmark", "mp_cfg", "dist_cfg", "resource_limit"}),
    "auto_scale_lr": frozenset({"enable", "base_batch_size"}),
}
_MISSING = object()
_OUTPUT_KEYS = frozenset(
    {"work_dir", "out_dir", "outfile_prefix", "test_out_dir", "save_dir", "log_dir", "out_file"}
)
#: Option names refused, and why.
_REFUSED = (
    (
        _OUTPUT_KEYS,
        "transfer writes everything under --work-dir (checked so that no one's files are"
        " overwritten); choose the place with --work-dir",
    ),
    (
        {"init_cfg", "load_from", "pretrained"},
        "transfer loads pretrained weights from its CHECKPOINT argument (exported and checked"
        " against the config); such options are for mmdet's own tools/train.py",
    ),
    (
        {"resume"},
        "transfer starts every run from its CHECKPOINT in a new --work-dir; to resume an"
        " interrupted mmdet training use mmdet's own tools/train.py --resume",
    ),
    (
        {"custom_imports"},
        "transfer imports no module named on its command line (it would run that module's"
        " code); register your modules in a --config file",
    ),
)


def walk_dicts(node: Any):
    """Every dict in a nested structure of dicts, lists and tuples (``node`` included)."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk_dicts(value)
    elif isinstance(node, list | tuple):
        for value in node:
            yield from walk_dicts(value)


def parse_cfg_options(options: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings as mmengine's ``DictAction`` parses them for mmdet's tools."""
    from mmengine.config import DictAction

    for option in options:
        key, sep, _ = option.partition("=")
        if not sep or not key.strip():
            raise UserError(
                f"--cfg-options {option}: expected KEY=VALUE, e.g. optim_wrapper.optimizer.lr=0.01"
            )
    action = DictAction(option_strings=["--cfg-options"], dest="cfg_options")
    namespace = argparse.Namespace()
    try:
        action(argparse.ArgumentParser(), namespace, options)
    except (AssertionError, RecursionError, ValueError) as err:  # DictAction's own limits
        raise UserError(
            f"--cfg-options {' '.join(options)}: not parsable as mmdet's tools parse them"
            f" ({first_line(err)[:80]}); write lists as [a,b] and dicts key by key (a.b.c=1)"
        ) from None
    return dict(namespace.cfg_options)


def _child(node: Any, part: str) -> Any:
    if isinstance(node, dict):
        return node.get(part, _MISSING)
    if isinstance(node, list | tuple) and part.isdigit() and int(part) < len(node):
        return node[int(part)]
    return _MISSING


def _constructors(type_name: Any) -> list[Any]:
    """Everything the name is registered as in mmdet's registries (and their mmengine parents)."""
    if not isinstance(type_name, str):
        return [type_name]
    import mmdet.registry
    from mmengine.registry import Registry

    import lightly_matrix.mmdet  # noqa: F401 - our registered modules

    found = []
    for registry in filter(lambda r: isinstance(r, Registry), vars(mmdet.registry).values()):
        try:
            obj = registry.get(type_name)
        except Exception:  # a registry whose lazy imports fail says nothing about this key
            continue
        if obj is not None and obj not in found:
            found.append(obj)
    return found


def _arguments(*objects: Any) -> set[str] | None:
    """Keyword arguments of classes (their MRO's ``__init__``) and functions; None: unknown."""
    import torch

    functions = []
    for obj in objects:
        if inspect.isclass(obj):
            classes = [k for k in obj.__mro__ if k not in (object, torch.nn.Module)]
            functions += [vars(k)["__init__"] for k in classes if "__init__" in vars(k)]
        elif callable(obj):
            functions.append(obj)
    names: set[str] = set()
    for function in functions:
        try:
            parameters = inspect.signature(function).parameters.values()
        except (TypeError, ValueError):
            return None
        names.update(p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))
    return names - {"self"}


def _accepted_names(path: list[str], parent: Any) -> set[str] | None:
    """New keys the dict at ``path`` accepts; ``None``: any (nothing to check against)."""
    if not path:
        from mmengine.runner import Runner

        return _arguments(Runner) or set()
    if not isinstance(parent, dict):
        return set()
    if "type" in parent:
        names = _arguments(*_constructors(parent["type"]))
        return (names | _BUILDER_KEYS) if names else None
    if len(path) == 1 and path[0].endswith("_dataloader"):
        from torch.utils.data import DataLoader

        return (_arguments(DataLoader) or set()) | _DATALOADER_KEYS
    if len(path) == 1 and path[0] in _SECTION_KEYS:
        return set(_SECTION_KEYS[path[0]])
    return None


#: Counts whose out-of-range values mmengine / torch only reject deep inside a run.
_COUNT_MINIMUM = dict(batch_size=1, max_iters=1, max_epochs=1, val_interval=1, interval=1,
                      num_workers=0)  # fmt: skip


def _check_type(key: str, old: Any, new: Any) -> None:
    """A number or a flag of the config stays one (``lr=abc`` would fail deep inside torch)."""
    if new is None:  # unsetting a value is the user's call
        return
    if isinstance(new, float) and not is_number(new):
        raise UserError(f"--cfg-options {key}={new!r}: expected a finite number")
    low = _COUNT_MINIMUM.get(key.rsplit(".", 1)[-1])
    if low is not None and is_number(old) and is_number(new) and new < low:
        raise UserError(f"--cfg-options {key}={new!r}: must be >= {low}")

    def of_dicts(value: Any) -> bool:
        values = value if isinstance(value, list | tuple) else [value]
        return all(isinstance(v, dict) for v in values)

    if of_dicts(old) and old and not of_dicts(new):
        index = ".0" if isinstance(old, list | tuple) else ""
        expected = f"{type(old).__name__} settings, set key by key ({key}{index}.type=...)"
    elif is_number(old) and not is_number(new):
        expected = f"a number (the config has {old!r})"
    elif isinstance(old, bool) and not isinstance(new, bool):
        expected = f"True or False (the config has {old!r})"
    else:
        return
    raise UserError(f"--cfg-options {key}={new!r}: expected {expected}")


def refuse_options(options: dict[str, Any]) -> None:
    """Refuse ``--cfg-options`` that write outside ``--work-dir``, load weights or import code."""
    for key, value in options.items():
        names = set(key.split(".")) | {k for d in walk_dicts(value) for k in d}
        for refused, why in _REFUSED:
            if names & refused:
                raise UserError(f"--cfg-options {key}: {why}")
        # Dicts are given key by key, so a file name template is always the option itself.
        if key.split(".")[-1] == "filename_tmpl" and any(c in str(value) for c in {"/", os.sep}):
            raise UserError(
                f"--cfg-options {key}: a checkpoint file name may not name a folder ('/'); "
                f"transfer writes everything under --work-dir, choose the place with --work-dir"
            )


def check_cfg_options(cfg: Any, options: dict[str, Any]) -> None:
    """Fail on ``--cfg-options`` keys that neither exist in ``cfg`` nor are accepted there.

    Raises:
        UserError: One line naming the unknown key and the closest existing ones.
    """
    from lightly_matrix.transfer.coco_check import config_classes

    original = cfg.to_dict()
    merged = copy.deepcopy(cfg)
    try:
        merged.merge_from_dict(options)
    except (TypeError, KeyError, ValueError) as err:
        raise UserError(f"--cfg-options do not fit the config: {first_line(err)}") from err
    for key in options:
        parts = key.split(".")
        node, depth = original, 0
        while depth < len(parts) and (child := _child(node, parts[depth])) is not _MISSING:
            node, depth = child, depth + 1
        if depth == len(parts):
            _check_type(key, node, options[key])
            count = len(config_classes(merged)) if parts[-1] == "num_classes" else options[key]
            if options[key] not in (node, count):  # a head's num_classes follows the datasets'
                raise UserError(
                    f"--cfg-options {key}={options[key]!r}: the config's datasets have {count}"
                    " classes; classes come from the config: use a --config for your classes, or"
                    " set its datasets' metainfo.classes too"
                )
            continue  # the key exists
        parent_path, new = parts[:depth], parts[depth]
        parent = functools.reduce(_child, parent_path, merged.to_dict())
        accepted = _accepted_names(parent_path, parent)
        if accepted is None or new in accepted:
            continue
        siblings = set(parent) if isinstance(parent, dict) else set()
        close = difflib.get_close_matches(new, sorted((siblings | accepted) - {new}), n=3)
        hint = " or ".join(".".join([*parent_path, name]) for name in close)
        hint = f"did you mean {hint}?" if close else "no similar key exists there"
        where = f"'{'.'.join(parent_path)}'" if parent_path else "the top level"
        raise UserError(
            f"--cfg-options {key}: '{new}' is not a key of {where} in the config and would be"
            f" silently ignored; {hint}"
        )
