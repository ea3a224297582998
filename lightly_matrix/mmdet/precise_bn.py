"""Precise BatchNorm statistics before evaluation, as Detectron2's ``TEST.PRECISE_BN`` [0].

During fine-tuning every BN layer keeps an exponential moving average (momentum 0.1) of batch
statistics taken under weights that kept changing; the last few hundred updates dominate it.
MoCo's detection code [1] (which Matrix-SSL and CorInfoMax ran for their COCO tables)
recomputes the running mean and variance of every BN layer with the final weights, over 200
training batches, before the model is evaluated. mmdet and mmengine have no such hook
(mmpretrain has one, but it is not a dependency), so this module provides
:func:`recompute_bn_stats` and the hook ``PreciseBNHook``, registered in mmdet's ``HOOKS``::

    custom_hooks = [dict(type='PreciseBNHook', num_iters=200)]

The statistics are those of Detectron2 (fvcore's ``update_bn_stats``): the plain average of the
per-batch means and of the per-batch (unbiased) variances, without momentum. SyncBN layers see
batch statistics gathered over all processes, so every process gets the same result.

- [0] Wu et al., 2019. Detectron2. https://github.com/facebookresearch/detectron2
- [1] He et al., 2020. Momentum Contrast for Unsupervised Visual Representation Learning.
  https://arxiv.org/abs/1911.05722
"""

from __future__ import annotations

import contextlib
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
from torch.utils.data import Dataset

from lightly_matrix.utils.checks import check_positive_int


class _SharedDataset(Dataset):
    """The built training set, passed through mmengine's ``build_dataloader`` uncopied.

    ``build_dataloader`` deep-copies its config; copying a built COCO training set would cost
    seconds and its memory a second time.
    """

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[index]

    def __getattr__(self, name: str) -> Any:
        # Samplers read the dataset's own attributes (AspectRatioBatchSampler: get_data_info).
        dataset = self.__dict__.get("dataset")
        if dataset is None:
            raise AttributeError(name)
        return getattr(dataset, name)

    def __deepcopy__(self, memo: dict[int, Any]) -> _SharedDataset:
        return self


def _running(bn: _BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """A layer's running mean and variance (present: :func:`bn_layers` keeps only such)."""
    assert bn.running_mean is not None and bn.running_var is not None
    return bn.running_mean, bn.running_var


def bn_layers(model: nn.Module) -> dict[str, _BatchNorm]:
    """Every BatchNorm layer (BN, SyncBN, ...) of ``model`` that keeps running statistics."""
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, _BatchNorm) and module.track_running_stats
    }


@torch.no_grad()
def recompute_bn_stats(
    model: nn.Module,
    batches: Iterable[Any],
    num_iters: int,
    forward: Callable[[Any], Any] | None = None,
    reduce: Callable[[torch.Tensor], Any] | None = None,
) -> list[str]:
    """Replace the running mean and variance of every BN layer by averages over ``num_iters``.

    The model runs in training mode without gradients; each BN layer's running statistics
    become the mean over the calls it received of the batch mean and the unbiased batch
    variance (a layer called twice in one forward pass counts twice). Nothing else changes:
    parameters, momentum and the training/eval mode are as before.

    Args:
        model: The model (or its unwrapped module) whose BN layers are recomputed.
        batches: Training batches (a list, a data loader); iterated anew if it ends early.
        num_iters: How many batches to run.
        forward: Runs one batch through ``model`` (default: ``model(batch)``).
        reduce: Sums a tensor in place over processes (distributed runs: ``all_reduce``), so
            that every process averages over all processes' batches.

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
    forward = forward or model
    layers = bn_layers(model)
    saved = {name: (bn.momentum, bn.training) for name, bn in layers.items()}
    # Per layer: summed batch means, summed batch variances, number of calls (float64 sums).
    sums = {
        name: _running(bn)[0].new_zeros(2 * bn.num_features + 1, dtype=torch.float64)
        for name, bn in layers.items()
    }

    def accumulate(name: str) -> Callable[..., None]:
        def hook(bn: _BatchNorm, inputs: Any, output: Any) -> None:
            # momentum 1: the running buffers now hold exactly this call's batch statistics.
            n, (mean, var) = bn.num_features, _running(bn)
            sums[name][:n] += mean
            sums[name][n : 2 * n] += var
            sums[name][-1] += 1

        return hook

    was_training = model.training
    handles = [bn.register_forward_hook(accumulate(name)) for name, bn in layers.items()]
    for bn in layers.values():
        bn.momentum = 1.0
    model.train()
    try:
        done = 0
        while done < num_iters:
            started = done
            for batch in itertools.islice(batches, num_iters - done):
                forward(batch)
                done += 1
            if done == started:
                raise ValueError("recompute_bn_stats got no batches to run")
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
        for name, bn in layers.items():
            bn.momentum, training = saved[name]
            bn.train(training)
    if reduce is not None and sums:
        flat = torch.cat(list(sums.values()))
        reduce(flat)
        sums = dict(zip(sums, flat.split([len(s) for s in sums.values()]), strict=True))
    unreached = []
    for name, bn in layers.items():
        n, total = bn.num_features, sums[name]
        count = total[-1].item()
        if count == 0:
            unreached.append(name)
            continue
        mean, var = _running(bn)
        mean.copy_(total[:n] / count)
        var.copy_(total[n : 2 * n] / count)
    return unreached


@HOOKS.register_module()
class PreciseBNHook(Hook):
    """Recompute BN statistics over ``num_iters`` training batches before each evaluation.

    It runs after the last training iteration (iteration-based loops) or epoch (epoch-based
    loops), and before every validation the loop runs on the way, ahead of the checkpoint hook,
    so the saved checkpoint and the final test both use the recomputed statistics. The batches
    come from a second data loader over the training set, built from ``train_dataloader``
    with non-persistent workers and another seed, so the training loop's own data order is
    untouched. In distributed runs every process runs the same number of batches and the sums
    are all-reduced, so every process ends with the average over all processes' batches.

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
        if done == total:
            return True
        if runner.val_loop is None:
            return False
        return done >= loop.val_begin and done % loop.val_interval == 0

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        if isinstance(runner.train_loop, EpochBasedTrainLoop):
            return
        if self._validates_now(runner, runner.iter + 1, runner.max_iters):
            self.recompute(runner)

    def after_train_epoch(self, runner: Any) -> None:
        if not isinstance(runner.train_loop, EpochBasedTrainLoop):
            return
        if self._validates_now(runner, runner.epoch + 1, runner.max_epochs):
            self.recompute(runner)

    def _loader(self, runner: Any) -> Any:
        """A second loader over the already-built training set (the loop's stays untouched)."""
        cfg = runner.cfg.get("train_dataloader")
        if not isinstance(cfg, dict):  # a Runner built from arguments keeps them here
            cfg = runner._train_dataloader
        if not isinstance(cfg, dict):
            raise ValueError("PreciseBNHook needs train_dataloader as a config dict")
        cfg = dict(cfg, dataset=_SharedDataset(runner.train_dataloader.dataset))
        cfg["persistent_workers"] = False
        if not cfg.get("num_workers"):
            cfg.pop("persistent_workers")
        randomness = runner.cfg.get("randomness") or {}
        # Another seed than the training loader's: other batches than its first ones.
        return runner.build_dataloader(
            cfg,
            seed=runner.seed + 1,
            diff_rank_seed=bool(randomness.get("diff_rank_seed", False)),
        )

    def recompute(self, runner: Any) -> None:
        """Recompute every BN layer's statistics of ``runner.model``."""
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        layers = bn_layers(model)
        if not layers:
            return
        wrapper = runner.optim_wrapper

        def forward(batch: Any) -> Any:
            # The training forward's precision (autocast under AmpOptimWrapper).
            context = (
                wrapper.optim_context(model)
                if isinstance(wrapper, OptimWrapper)
                else contextlib.nullcontext()
            )
            with context:
                data = model.data_preprocessor(batch, True)
                if isinstance(data, dict):
                    return model(**data, mode="loss")
                return model(*data, mode="loss")

        print_log(
            f"PreciseBN: recomputing the statistics of {len(layers)} BN layers over"
            f" {self.num_iters} training batches",
            logger="current",
        )
        unreached = recompute_bn_stats(
            model,
            self._loader(runner),
            self.num_iters,
            forward=forward,
            reduce=lambda t: all_reduce(t, op="sum"),
        )
        if unreached:
            print_log(
                f"PreciseBN: {len(unreached)} BN layers saw no batch and keep their statistics:"
                f" {', '.join(unreached[:5])}",
                logger="current",
                level=logging.WARNING,
            )
