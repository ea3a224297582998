"""Precise BatchNorm statistics before evaluation, as Detectron2's ``TEST.PRECISE_BN`` [0].

MoCo's detection code [1] (behind Matrix-SSL's and CorInfoMax's COCO tables) averages every BN
layer's statistics over 200 training batches with the final weights; mmdet has no such hook.

- [0] Wu et al., 2019. Detectron2. https://github.com/facebookresearch/detectron2
- [1] He et al., 2020. Momentum Contrast for Unsupervised Visual Representation Learning.
  https://arxiv.org/abs/1911.05722
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
from collections.abc import Callable, Iterable
from typing import Any

import torch
from mmdet.registry import HOOKS
from mmengine.dist import all_reduce
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper
from mmengine.runner import EpochBasedTrainLoop
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from lightly_matrix.utils.checks import check_positive_int


class _Uncopied:
    """The built training set, not deep-copied by ``build_dataloader`` (seconds and memory)."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return self.dataset


def bn_layers(model: nn.Module) -> dict[str, _BatchNorm]:
    """Every BatchNorm layer (BN, SyncBN, ...) of ``model`` that keeps running statistics."""
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, _BatchNorm) and module.track_running_stats
    }


def _stats(bn: _BatchNorm) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    mean, var, count = bn.running_mean, bn.running_var, bn.num_batches_tracked
    assert mean is not None and var is not None and count is not None
    return mean, var, count


@torch.no_grad()
def recompute_bn_stats(
    model: nn.Module,
    batches: Iterable[Any],
    num_iters: int,
    forward: Callable[[Any], Any] | None = None,
    reduce: Callable[[torch.Tensor], Any] | None = None,
) -> list[str]:
    """Replace the running mean and variance of every BN layer by averages over ``num_iters``.

    As torch's ``update_bn`` (a cumulative average, in training mode); momentum and modes are
    kept, and a failing forward leaves the statistics unchanged.

    Args:
        model: The model (or its unwrapped module) whose BN layers are recomputed.
        batches: Training batches (a list, a data loader); iterated anew if it ends early.
        num_iters: How many batches to run.
        forward: Runs one batch through ``model`` (default: ``model(batch)``).
        reduce: Sums a tensor in place over processes (``all_reduce``), to average over all.

    Returns:
        Names of the BN layers that no batch reached; they keep their statistics.

    Raises:
        ValueError: If ``num_iters`` is not positive or ``batches`` yields nothing.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.BatchNorm1d(2), nn.Linear(2, 1))
        >>> data = [torch.tensor([[0.0, 1.0], [2.0, 3.0]]), torch.tensor([[4.0, 5.0], [6.0, 7.0]])]
        >>> recompute_bn_stats(model, data, num_iters=2)
        []
        >>> model[0].running_mean, model[0].running_var
        (tensor([3., 4.]), tensor([2., 2.]))
    """
    check_positive_int("num_iters", num_iters, hint="the number of batches to average over")
    layers = bn_layers(model)
    if not layers:
        return []
    modes = {bn: (bn.momentum, bn.training) for bn in layers.values()}
    old = {bn: [t.clone() for t in _stats(bn)[:2]] for bn in layers.values()}
    was_training = model.training
    model.train()
    for bn in layers.values():
        bn.reset_running_stats()
        bn.momentum = None  # a cumulative average
    try:
        done = 0
        while done < num_iters:  # batches is iterated anew whenever it ends
            started = done
            for batch in itertools.islice(batches, num_iters - done):
                (forward or model)(batch)
                done += 1
            if done == started:
                raise ValueError("recompute_bn_stats got no batches to run")
    except BaseException:
        for bn, (mean, var) in old.items():
            _stats(bn)[0].copy_(mean)
            _stats(bn)[1].copy_(var)
        raise
    finally:
        model.train(was_training)
        for bn, (momentum, training) in modes.items():
            bn.momentum = momentum
            bn.train(training)
    # Per layer: count * (mean, variance, 1), summed over processes by reduce.
    sums = [
        torch.cat([mean, var, mean.new_ones(1)]) * n.to(mean)
        for mean, var, n in map(_stats, layers.values())
    ]
    flat = torch.cat(sums)
    if reduce is not None:
        reduce(flat)
    unreached = []
    for (name, bn), total in zip(layers.items(), flat.split([len(s) for s in sums]), strict=True):
        c, calls = bn.num_features, float(total[-1])
        if calls == 0:
            unreached.append(name)
        _stats(bn)[0].copy_(total[:c] / calls if calls else old[bn][0])
        _stats(bn)[1].copy_(total[c : 2 * c] / calls if calls else old[bn][1])
    return unreached


@HOOKS.register_module()
class PreciseBNHook(Hook):
    """Recompute BN statistics over ``num_iters`` training batches before each evaluation.

    It runs before the checkpoint hook, on a second training loader: the loop's data order stays.

    Args:
        num_iters: Training batches to average over (Detectron2's ``PRECISE_BN.NUM_ITER``: 200).

    Examples:
        >>> from lightly_matrix.mmdet.precise_bn import PreciseBNHook
        >>> PreciseBNHook(num_iters=200).num_iters
        200
    """

    priority = "ABOVE_NORMAL"  # before CheckpointHook (VERY_LOW) writes the weights

    def __init__(self, num_iters: int = 200) -> None:
        self.num_iters = check_positive_int(
            "PreciseBNHook num_iters", num_iters, hint="Detectron2 uses 200"
        )

    @staticmethod
    def _validates_now(runner: Any, done: int, total: int) -> bool:
        loop = runner.train_loop
        return done == total or (
            runner.val_loop is not None and done >= loop.val_begin and done % loop.val_interval == 0
        )

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        """Recompute after an iteration-based loop's last iteration and before its validations."""
        by_iter = not isinstance(runner.train_loop, EpochBasedTrainLoop)
        if by_iter and self._validates_now(runner, runner.iter + 1, runner.max_iters):
            self.recompute(runner)

    def after_train_epoch(self, runner: Any) -> None:
        """Recompute after an epoch-based loop's last epoch and before its validations."""
        by_epoch = isinstance(runner.train_loop, EpochBasedTrainLoop)
        if by_epoch and self._validates_now(runner, runner.epoch + 1, runner.max_epochs):
            self.recompute(runner)

    def _loader(self, runner: Any) -> Any:
        cfg = runner._train_dataloader  # as the Runner got it (from a config or arguments)
        if not isinstance(cfg, dict):
            raise ValueError("PreciseBNHook needs train_dataloader as a config dict")
        dataset = _Uncopied(runner.train_dataloader.dataset)
        cfg = dict(cfg, dataset=dataset, persistent_workers=False)
        diff_rank_seed = bool(runner._randomness_cfg.get("diff_rank_seed", False))
        return runner.build_dataloader(cfg, seed=runner.seed + 1, diff_rank_seed=diff_rank_seed)

    def recompute(self, runner: Any) -> None:
        """Recompute every BN layer's statistics of ``runner.model``."""
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        layers = bn_layers(model)
        if not layers:
            return
        wrapper = runner.optim_wrapper
        amp = isinstance(wrapper, OptimWrapper)  # the training forward's precision (autocast)

        def forward(batch: Any) -> Any:
            with wrapper.optim_context(model) if amp else contextlib.nullcontext():
                return model._run_forward(model.data_preprocessor(batch, True), mode="loss")

        msg = f"PreciseBN: recomputing {len(layers)} BN layers over {self.num_iters} batches"
        print_log(msg, logger="current")
        reduce = functools.partial(all_reduce, op="sum")
        unreached = recompute_bn_stats(model, self._loader(runner), self.num_iters, forward, reduce)
        if unreached:
            msg = f"PreciseBN: {len(unreached)} BN layers saw no batch and keep their statistics"
            print_log(f"{msg}: {', '.join(unreached[:5])}", logger="current", level=logging.WARNING)
