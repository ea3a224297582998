"""PreciseBN: recomputed BN statistics equal the closed-form averages over the batches run."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import BaseDataset
from mmengine.model import BaseModel
from mmengine.registry import DATASETS, MODELS, init_default_scope
from mmengine.runner import Runner
from torch import nn

from lightly_matrix.mmdet.precise_bn import PreciseBNHook, bn_layers, recompute_bn_stats


def batch_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and unbiased variance of a batch (N, C) or (N, C, H, W)."""
    dims = [0, *range(2, x.dim())]
    return x.mean(dims), x.var(dims, unbiased=True)


def normalise(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """A freshly initialised BN layer's training-mode output (biased batch variance)."""
    dims = [0, *range(2, x.dim())]
    mean = x.mean(dims, keepdim=True)
    return (x - mean) / (x.var(dims, unbiased=False, keepdim=True) + eps).sqrt()


def closed_form(batches: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    stats = [batch_stats(b) for b in batches]
    return (
        torch.stack([m for m, _ in stats]).mean(0),
        torch.stack([v for _, v in stats]).mean(0),
    )


def poisoned(model: nn.Module) -> nn.Module:
    """Running statistics far from any batch's, so a missed update cannot pass unnoticed."""
    for bn in bn_layers(model).values():
        bn.running_mean.fill_(100.0)
        bn.running_var.fill_(1e-3)
    return model


def test_running_stats_become_the_average_of_batch_statistics():
    torch.manual_seed(0)
    model = poisoned(nn.Sequential(nn.BatchNorm1d(3), nn.Linear(3, 2)))
    model.eval()
    batches = [torch.randn(5, 3) * (i + 1) + i for i in range(4)]
    weight = model[1].weight.clone()
    unreached = recompute_bn_stats(model, batches, num_iters=4)
    mean, var = closed_form(batches)
    assert unreached == []
    torch.testing.assert_close(model[0].running_mean, mean)
    torch.testing.assert_close(model[0].running_var, var)
    # Nothing else changed: mode, momentum, parameters.
    assert not model.training and not model[0].training and model[0].momentum == 0.1
    torch.testing.assert_close(model[1].weight, weight)


class TwoStage(nn.Module):
    """BN2d, a SyncBN, a BN applied twice per forward, and a BN the forward never reaches."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(2)
        self.sync = nn.SyncBatchNorm(2)
        self.twice = nn.BatchNorm2d(2)
        self.unused = nn.BatchNorm2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.twice(self.twice(self.sync(self.bn(x)) * 3 + 1) * 2)


def test_every_kind_of_bn_layer_and_more_iterations_than_batches():
    torch.manual_seed(1)
    model = poisoned(TwoStage())
    batches = [torch.randn(4, 2, 3, 3) + i for i in range(3)]
    # 5 iterations over 3 batches: the list is run again from its start (b0 b1 b2 b0 b1).
    unreached = recompute_bn_stats(model, batches, num_iters=5)
    run = [batches[i % 3] for i in range(5)]
    mean, var = closed_form(run)
    torch.testing.assert_close(model.bn.running_mean, mean)
    torch.testing.assert_close(model.bn.running_var, var)
    # The SyncBN sees the first BN's training-mode output (unit weight, zero bias at init).
    normalised = [normalise(b) for b in run]
    torch.testing.assert_close(model.sync.running_mean, closed_form(normalised)[0])
    torch.testing.assert_close(model.sync.running_var, closed_form(normalised)[1])
    # The layer called twice per forward averages over both calls of every batch.
    first = [normalise(b) * 3 + 1 for b in normalised]
    second = [normalise(f) * 2 for f in first]
    torch.testing.assert_close(model.twice.running_mean, closed_form(first + second)[0])
    torch.testing.assert_close(model.twice.running_var, closed_form(first + second)[1])
    # A layer no batch reached keeps its statistics and is reported.
    assert unreached == ["unused"]
    assert torch.all(model.unused.running_mean == 100.0)


def test_reduce_averages_over_all_processes_batches():
    """Two processes' sums added up (what all_reduce does) give the average over both."""
    torch.manual_seed(2)
    model_a = poisoned(nn.Sequential(nn.BatchNorm1d(4)))
    model_b = copy.deepcopy(model_a)
    batches_a = [torch.randn(3, 4) for _ in range(2)]
    batches_b = [torch.randn(3, 4) * 5 - 2 for _ in range(2)]
    other: list[torch.Tensor] = []
    recompute_bn_stats(model_b, batches_b, 2, reduce=lambda t: other.append(t.clone()))
    recompute_bn_stats(model_a, batches_a, 2, reduce=lambda t: t.add_(other[0]))
    mean, var = closed_form(batches_a + batches_b)
    torch.testing.assert_close(model_a[0].running_mean, mean)
    torch.testing.assert_close(model_a[0].running_var, var)


def test_bad_inputs_are_clear_errors():
    model = nn.Sequential(nn.BatchNorm1d(2))
    with pytest.raises(ValueError, match="num_iters"):
        recompute_bn_stats(model, [torch.randn(2, 2)], num_iters=0)
    with pytest.raises(ValueError, match="no batches"):
        recompute_bn_stats(model, [], num_iters=3)
    with pytest.raises(ValueError, match="no batches"):
        recompute_bn_stats(model, iter([torch.randn(2, 2)]), num_iters=3)  # an exhausted iterator
    assert model[0].momentum == 0.1 and model[0].training  # restored after the failure
    poisoned(model)

    def failing(batch: torch.Tensor) -> None:
        model(batch)
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        recompute_bn_stats(model, [torch.randn(4, 2)], num_iters=2, forward=failing)
    assert torch.all(model[0].running_mean == 100.0) and model[0].momentum == 0.1
    for bad in (0, -1, 2.5, True, "200"):
        with pytest.raises(ValueError, match="num_iters"):
            PreciseBNHook(num_iters=bad)


def test_hook_is_in_mmdets_registry():
    from mmdet.registry import HOOKS

    init_default_scope("mmdet")
    hook = HOOKS.build(dict(type="PreciseBNHook", num_iters=200))
    assert isinstance(hook, PreciseBNHook) and hook.num_iters == 200


@pytest.mark.parametrize(
    ("done", "total", "val", "expected"),
    [(5, 5, False, True), (3, 5, False, False), (4, 8, True, True), (3, 8, True, False),
     (2, 8, True, False)],  # val_begin 4: no validation before it
)  # fmt: skip
def test_hook_runs_at_the_end_and_before_each_validation(done, total, val, expected):
    loop = SimpleNamespace(val_begin=4, val_interval=2)
    runner = SimpleNamespace(train_loop=loop, val_loop=object() if val else None)
    assert PreciseBNHook._validates_now(runner, done, total) is expected


# --- the hook inside mmengine's Runner: a toy model whose first layer is the BN ---------------

VALUES = torch.tensor([[0.0, 1.0], [2.0, 5.0], [4.0, -3.0], [7.0, 2.0]])


@DATASETS.register_module(force=True)
class PreciseBNToyData(BaseDataset):
    def __init__(self, **kwargs):
        super().__init__(serialize_data=False, **kwargs)

    def load_data_list(self):
        return [dict(inputs=row.clone()) for row in VALUES]


@MODELS.register_module(force=True)
class PreciseBNToyModel(BaseModel):
    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm1d(2)
        self.fc = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode="tensor", **meta):
        out = self.fc(self.bn(torch.stack(inputs)))
        return {"loss": out.pow(2).mean()} if mode == "loss" else out


@pytest.mark.parametrize("loop", ["iter", "epoch"])
def test_hook_in_a_runner_recomputes_before_the_checkpoint(tmp_path, loop, monkeypatch):
    calls = []
    original = PreciseBNHook.recompute
    monkeypatch.setattr(
        PreciseBNHook, "recompute", lambda self, runner: calls.append(1) or original(self, runner)
    )
    train_cfg = (
        dict(type="IterBasedTrainLoop", max_iters=3, val_interval=3)
        if loop == "iter"
        else dict(type="EpochBasedTrainLoop", max_epochs=2)
    )
    cfg = Config(
        dict(
            default_scope="mmdet",
            model=dict(type="PreciseBNToyModel"),
            work_dir=str(tmp_path),
            train_dataloader=dict(
                dataset=dict(type="PreciseBNToyData"),
                sampler=dict(type="DefaultSampler", shuffle=False),
                batch_size=2,
                num_workers=0,
            ),
            optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
            train_cfg=train_cfg,
            custom_hooks=[dict(type="PreciseBNHook", num_iters=3)],
            default_hooks=dict(
                checkpoint=dict(
                    type="CheckpointHook",
                    interval=3 if loop == "iter" else 2,
                    by_epoch=loop == "epoch",
                ),
                logger=dict(type="LoggerHook", interval=1),
            ),
            randomness=dict(seed=0),
            env_cfg=dict(dist_cfg=dict(backend="gloo")),
            log_level="WARNING",
        )
    )
    runner = Runner.from_cfg(cfg)
    runner.train()
    # Once, at the end; 3 batches from a fresh, unshuffled loader: rows (0,1), (2,3), (0,1).
    assert calls == [1]
    run = [VALUES[:2], VALUES[2:], VALUES[:2]]
    mean, var = closed_form(run)
    torch.testing.assert_close(runner.model.bn.running_mean, mean)
    torch.testing.assert_close(runner.model.bn.running_var, var)
    # The checkpoint hook ran after it: the saved weights hold the recomputed statistics.
    name = "iter_3.pth" if loop == "iter" else "epoch_2.pth"
    saved = torch.load(tmp_path / name, map_location="cpu", weights_only=False)["state_dict"]
    torch.testing.assert_close(saved["bn.running_mean"], mean)
    torch.testing.assert_close(saved["bn.running_var"], var)
