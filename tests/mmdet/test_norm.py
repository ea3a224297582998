"""Our LayerNorm2d: registered under a name of its own, ``LN2d`` kept without clashing with
mmdet's ViTDet project (which registers ``LN2d`` too), timm's implementation at eps 1e-5."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import timm.layers
import torch
from mmcv.cnn import build_norm_layer
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import init_default_scope
from torch import nn

from lightly_matrix.mmdet import TimmViTSimplePyramid
from lightly_matrix.mmdet.norm import NAME, LayerNorm2d, register_legacy_name
from lightly_matrix.transfer.cfg_options import parse_cfg_options
from lightly_matrix.transfer.configs import config_dir

ROOT = Path(__file__).resolve().parents[2]


class _OtherLN2d(nn.Module):
    """Stands for mmdet's projects/ViTDet ``LN2d`` (its own class, its own eps)."""

    def __init__(self, normalized_shape: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(normalized_shape))
        self.eps = eps


def _built(type_name: str) -> nn.Module:
    init_default_scope("mmdet")  # as mmdet's configs do
    return build_norm_layer(dict(type=type_name), 8)[1]


def test_is_timms_layer_norm_2d_at_eps_1e_5_and_the_old_formula():
    norm = _built(NAME)
    assert isinstance(norm, LayerNorm2d) and isinstance(norm, timm.layers.LayerNorm2d)
    assert norm.eps == 1e-5 and LayerNorm2d(8).eps == 1e-5
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    x = torch.randn(2, 8, 3, 5) * 3 + 1
    # The class it replaces: nn.LayerNorm (eps 1e-5) over the channels of each position.
    mean = x.mean(1, keepdim=True)
    var = x.var(1, unbiased=False, keepdim=True)
    reference = (x - mean) / torch.sqrt(var + 1e-5) * norm.weight.view(1, -1, 1, 1)
    torch.testing.assert_close(norm(x), reference + norm.bias.view(1, -1, 1, 1))
    assert _built("LN2d").eps == 1e-5  # the old name, when nobody else registered it
    assert isinstance(_built("LN2d"), LayerNorm2d)


def test_a_later_ln2d_registration_does_not_clash_and_wins_the_old_name():
    """mmdet's ViTDet project imported after our plugin: its import works, its LN2d is used for
    ``LN2d`` in mmdet's scope; our name and our backbone keep ours."""
    MODELS.register_module(module=_OtherLN2d, name="LN2d")  # raised KeyError before
    try:
        assert isinstance(_built("LN2d"), _OtherLN2d)
        assert isinstance(_built(NAME), LayerNorm2d)
        backbone = TimmViTSimplePyramid(
            "vit_tiny_patch16_224", img_size=32, out_channels=16, norm_cfg=dict(type="LN2d")
        )
        norms = [m for m in backbone.pyramid.modules() if isinstance(m, nn.LayerNorm)]
        assert norms and all(type(m) is LayerNorm2d and m.eps == 1e-5 for m in norms)
    finally:
        del MODELS._module_dict["LN2d"]
    assert isinstance(_built("LN2d"), LayerNorm2d)


_FIRST = """
import json, torch
from torch import nn
from mmengine.registry import MODELS as ROOT, init_default_scope
from mmdet.registry import MODELS as MMDET
from mmcv.cnn import build_norm_layer
class LN2d(nn.Module):
    def __init__(self, normalized_shape, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(normalized_shape))
MMDET.register_module(module=LN2d)  # as mmdet's projects/ViTDet/vitdet/vit.py does
import lightly_matrix.mmdet  # raised KeyError before
init_default_scope("mmdet")
print(json.dumps([type(build_norm_layer(dict(type=t), 4)[1]).__module__
                  for t in ("LN2d", "LightlyMatrixLN2d")]))
"""


def test_an_earlier_ln2d_registration_does_not_clash():
    """mmdet's ViTDet project imported before our plugin (a fresh process: imports run once)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", _FIRST],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    old, ours = json.loads(done.stdout.strip().splitlines()[-1])
    assert old == "__main__" and ours == "lightly_matrix.mmdet.norm"


def test_the_old_name_is_left_to_an_earlier_root_registration():
    """Someone registered ``LN2d`` in mmengine's root registry first: ours leaves it alone."""
    ours = ROOT_MODELS._module_dict.pop("LN2d")
    try:
        ROOT_MODELS.register_module(module=_OtherLN2d, name="LN2d")
        assert register_legacy_name() is False
        assert ROOT_MODELS.get("LN2d") is _OtherLN2d
        assert isinstance(_built("LN2d"), _OtherLN2d) and isinstance(_built(NAME), LayerNorm2d)
    finally:
        ROOT_MODELS._module_dict["LN2d"] = ours
    assert register_legacy_name() is True  # ours again, and registering twice is harmless


def test_configs_with_the_old_name_still_build_through_cfg_options():
    """A config (or --cfg-options) saying ``LN2d``, as ours did, builds our norm everywhere."""
    cfg = Config.fromfile(str(config_dir() / "mask-rcnn_vit-b16_vitdet_lsj-100e_coco.py"))
    cfg.merge_from_dict(
        parse_cfg_options(
            [
                "model.backbone.model_name=vit_tiny_patch16_224",
                "model.backbone.img_size=64",
                "model.backbone.det_img_size=128",
                "model.backbone.window_size=4",
                "model.backbone.norm_cfg.type=LN2d",
                "model.roi_head.bbox_head.norm_cfg.type=LN2d",
                "model.roi_head.mask_head.norm_cfg.type=LN2d",
            ]
        )
    )
    assert cfg.model.backbone.norm_cfg.type == "LN2d"
    init_default_scope("mmdet")
    model = MODELS.build(copy.deepcopy(cfg.model))
    norms = {name: m for name, m in model.named_modules() if isinstance(m, nn.LayerNorm)}
    pyramid_and_heads = {n: m for n, m in norms.items() if not n.startswith("backbone.vit.")}
    where = [n.split(".")[1] for n in pyramid_and_heads]
    # ViTDet's pyramid (3 + 2 + 2 + 2 at strides 4-32) and the 4 convs of each head.
    assert {w: where.count(w) for w in set(where)} == {"pyramid": 9, "bbox_head": 4, "mask_head": 4}
    assert all(type(m) is LayerNorm2d and m.eps == 1e-5 for m in pyramid_and_heads.values())
    # The same state-dict names as with our new name: checkpoints of either config fit both.
    assert any(n.endswith(".ln") for n in pyramid_and_heads)
    assert ROOT_MODELS.get("LN2d") is LayerNorm2d
