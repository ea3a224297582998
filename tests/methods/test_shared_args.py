"""The shared constructor arguments, declared once (``SharedArgs``), each method's defaults on top,
the authors' letters the losses accept, and Lightly's ``knn_k``/``knn_t``."""

from __future__ import annotations

import inspect
import typing
from typing import Any

import pytest

from lightly_matrix.methods import METHOD_CLASSES
from lightly_matrix.methods.base import RESNET_ARGS, PretrainModule, SharedArgs

SHARED = set(typing.get_type_hints(SharedArgs))
# Small heads so that building a module takes milliseconds.
TINY: dict[str, dict[str, Any]] = {
    "matrix_ssl": {"hidden_dim": 16, "output_dim": 16, "pred_hidden_dim": 8},
    "corinfomax": {"hidden_dim": 16, "output_dim": 8},
    "mmae": {"decoder_dim": 16, "decoder_depth": 1, "decoder_num_heads": 2},
    "umae": {"decoder_dim": 16, "decoder_depth": 1, "decoder_num_heads": 2},
    "mae": {"decoder_dim": 16, "decoder_depth": 1, "decoder_num_heads": 2},
    "barlowtwins": {"hidden_dim": 16, "output_dim": 16},
    "vicreg": {"hidden_dim": 16, "output_dim": 16},
    "byol": {"hidden_dim": 16, "output_dim": 16, "pred_hidden_dim": 8},
    "mec": {"hidden_dim": 16, "output_dim": 16, "pred_hidden_dim": 8},
}


def tiny(name: str, **kwargs: Any) -> Any:
    cls = METHOD_CLASSES[name]
    backbone = {"backbone": "vit_tiny_patch16_224", "image_size": 32} if cls.masked else {}
    return cls(**{"backbone": "resnet18", **backbone, "num_classes": 10, **TINY[name], **kwargs})


def test_shared_arguments_have_one_declaration_and_one_default() -> None:
    # Every shared argument has a default, except lr and weight decay, which each method sets.
    assert set(PretrainModule.shared_defaults) == SHARED - {"lr", "weight_decay"}
    for name, cls in METHOD_CLASSES.items():
        params = inspect.signature(cls.__init__).parameters.values()
        own = {p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}
        assert not own & SHARED, f"{name} declares shared arguments again: {own & SHARED}"
        assert [p.kind for p in params][-1] is inspect.Parameter.VAR_KEYWORD
        assert set(cls.shared_defaults) >= SHARED
        expected = SHARED - set(RESNET_ARGS) if cls.masked else SHARED
        assert expected <= set(cls.hparam_defaults())


@pytest.mark.parametrize("name", list(METHOD_CLASSES))
def test_a_built_module_records_every_hyper_parameter_with_its_defaults(name: str) -> None:
    module = tiny(name)
    cls = METHOD_CLASSES[name]
    defaults = cls.hparam_defaults()
    assert set(module.hparams) == set(defaults) | {"method"}
    for key, value in cls.shared_defaults.items():
        if key in module.hparams and key not in (
            "backbone",
            "num_classes",
            "image_size",
            *TINY[name],
        ):
            assert module.hparams[key] == value
    # What is recorded is what was built: checkpoints rebuild the same module from it.
    rebuilt = cls(**dict(module.hparams))
    assert rebuilt.hparams == module.hparams


@pytest.mark.parametrize("name", ["matrix_ssl", "corinfomax", "mmae"])
def test_positional_and_unknown_arguments_are_refused(name: str) -> None:
    with pytest.raises(TypeError):
        METHOD_CLASSES[name]("resnet18")
    with pytest.raises(TypeError, match="hidden_dims"):
        tiny(name, hidden_dims=3)


@pytest.mark.parametrize(
    "bad",
    [
        {"decay_norm_and_bias": "no"},  # any string is truthy
        {"batch_size_per_device": 0},  # a zero or negative lr
        {"batch_size_per_device": True},
        {"lr": True},
        {"patch_size": "16"},
    ],
)
def test_wrongly_typed_or_empty_batch_arguments_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=rf"^(BarlowTwins: )?{next(iter(bad))} must be"):
        tiny("barlowtwins", **bad)


def test_knn_arguments_are_lightlys_and_checked() -> None:
    module = tiny("barlowtwins")
    assert (module.hparams["knn_k"], module.hparams["knn_t"]) == (200, 0.1)
    assert tiny("barlowtwins", knn_k=5, knn_t=0.5).hparams["knn_k"] == 5
    for bad in ({"knn_k": 0}, {"knn_k": 2.5}, {"knn_t": 0.0}, {"knn_t": float("nan")}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            tiny("barlowtwins", **bad)
