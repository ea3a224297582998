"""What every method's optimisation does, checked against values computed here: the EMA teacher
update, the optimizer's parameter groups, and the lr scaled to the global batch."""

from __future__ import annotations

import copy

import pytest
import torch
from method_helpers import EMA_TEACHER_METHODS, fit, make_module
from pytorch_lightning import seed_everything
from torch import nn

from lightly_matrix.methods import METHOD_CLASSES


@pytest.mark.parametrize("method", EMA_TEACHER_METHODS)
def test_teacher_is_the_momentum_average_after_each_step(method: str) -> None:
    seed_everything(0, verbose=False)
    module = make_module(method, momentum_start=0.75, momentum_end=0.75)
    before = copy.deepcopy(module.teacher_backbone)
    fit(module, 1, "momentum")
    # One step: teacher <- m * teacher + (1 - m) * student, with the student after its step.
    for (name, t_new), t_old, s_new in zip(
        module.teacher_backbone.named_parameters(),
        before.parameters(),
        module.backbone.parameters(),
        strict=True,
    ):
        torch.testing.assert_close(t_new, 0.75 * t_old + 0.25 * s_new, msg=name)


def _kinds(module: nn.Module) -> dict[int, str]:
    """Every parameter: 'norm_or_bias' (a norm layer's or any bias) or 'weight', by identity."""
    kinds = {}
    for sub in module.modules():
        for name, param in sub.named_parameters(recurse=False):
            norm = isinstance(sub, nn.modules.batchnorm._NormBase | nn.LayerNorm | nn.GroupNorm)
            kinds[id(param)] = "norm_or_bias" if norm or name == "bias" else "weight"
    return kinds


@pytest.mark.parametrize("method", ["matrix_ssl", "corinfomax", "vicreg", "mmae"])
@pytest.mark.parametrize("decay_all", [True, False])
def test_parameter_groups_hold_each_trainable_parameter_once(method: str, decay_all: bool) -> None:
    module = make_module(method, decay_norm_and_bias=decay_all)
    groups = {g["name"]: g for g in module.parameter_groups()}
    seen = [id(p) for g in groups.values() for p in g["params"]]
    trainable = {id(p) for p in module.parameters() if p.requires_grad}
    assert len(seen) == len(set(seen)) and set(seen) == trainable
    probe = {id(p) for p in module.online_classifier.parameters()}
    assert {id(p) for p in groups["online_classifier"]["params"]} == probe
    assert groups["online_classifier"]["weight_decay"] == 0.0
    kinds = _kinds(module)
    decayed = {kinds[id(p)] for p in groups["weights"]["params"]}
    if decay_all:
        assert "no_weight_decay" not in groups and decayed == {"weight", "norm_or_bias"}
    else:  # Lightly's rule: biases and norms are not decayed
        assert decayed == {"weight"}
        assert {kinds[id(p)] for p in groups["no_weight_decay"]["params"]} == {"norm_or_bias"}
        assert groups["no_weight_decay"]["weight_decay"] == 0.0
    if hasattr(module, "teacher_backbone"):
        assert not {id(p) for p in module.teacher_backbone.parameters()} & set(seen)


@pytest.mark.parametrize("method", list(METHOD_CLASSES))
def test_peak_lr_is_per_256_images_of_the_global_batch(method: str) -> None:
    module = make_module(method, lr=0.4, batch_size_per_device=32, lr_scaling="linear")
    for world_size in (1, 2, 8):
        assert module.peak_lr(world_size) == pytest.approx(0.4 * 32 * world_size / 256)
    absolute = make_module(method, lr=0.4, batch_size_per_device=32, lr_scaling="none")
    assert [absolute.peak_lr(w) for w in (1, 8)] == [0.4, 0.4]
