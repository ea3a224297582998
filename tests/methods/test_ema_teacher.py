"""BYOL, MEC and Matrix-SSL share one EMA teacher, momentum schedule and two-view step."""

from __future__ import annotations

import math

import pytest
import torch
from method_helpers import EMA_TEACHER_METHODS, fit, make_module
from pytorch_lightning import seed_everything

from lightly_matrix.methods import METHOD_CLASSES, MatrixSSL
from lightly_matrix.methods.ema_teacher import EMATeacherModule


@pytest.mark.parametrize("method", EMA_TEACHER_METHODS)
def test_teacher_follows_the_cosine_momentum_schedule(method: str) -> None:
    seed_everything(0, verbose=False)
    module = make_module(method, momentum_start=0.5, momentum_end=0.9)
    assert isinstance(module, EMATeacherModule)
    online = {k: v.clone() for k, v in module.backbone.state_dict().items()}
    teacher = {k: v.clone() for k, v in module.teacher_backbone.state_dict().items()}
    assert all(torch.equal(online[k], teacher[k]) for k in online)  # starts as a copy
    steps = 5
    logged = fit(module, steps, "momentum")["momentum"]
    # The authors' cosine_scheduler(0.5, 0.9, ...): per step, over all steps, no warm-up.
    expected = [0.9 + 0.5 * (0.5 - 0.9) * (1 + math.cos(math.pi * s / steps)) for s in range(steps)]
    torch.testing.assert_close(torch.tensor(logged), torch.tensor(expected))
    assert not any(p.requires_grad for p in module.teacher_backbone.parameters())
    assert not any(p.requires_grad for p in module.teacher_projection_head.parameters())
    # The teacher moved, but is not the online network.
    weight = "0.weight"
    assert not torch.equal(module.teacher_backbone.state_dict()[weight], teacher[weight])
    assert not torch.equal(module.teacher_backbone.state_dict()[weight], module.backbone[0].weight)


@pytest.mark.parametrize("method", ["byol", "mec"])
def test_twins_share_matrix_ssls_recipe_arguments(method: str) -> None:
    ours, twin = METHOD_CLASSES[method].hparam_defaults(), MatrixSSL.hparam_defaults()
    shared = (
        "backbone",
        "batch_size_per_device",
        "stem",
        "optimizer",
        "lr",
        "weight_decay",
        "warmup_epochs",
        "momentum_start",
        "momentum_end",
        "hidden_dim",
        "output_dim",
        "pred_hidden_dim",
    )
    for key in shared:
        assert key in ours
        if not key.endswith("_dim"):
            assert ours[key] == twin[key], key
