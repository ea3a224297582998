"""The generated coloured-shapes data set is valid COCO instance segmentation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from messages import assert_names
from pycocotools.coco import COCO

from lightly_matrix.data.coco_shapes import CATEGORIES, check_shapes_root, make_coco_shapes


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory):
    return make_coco_shapes(
        tmp_path_factory.mktemp("shapes"), num_train=6, num_val=3, image_size=96
    )


def test_standard_layout(shapes_root):
    for rel in ("annotations/instances_train2017.json", "annotations/instances_val2017.json"):
        assert (shapes_root / rel).is_file()
    assert len(list((shapes_root / "train2017").glob("*.jpg"))) == 6
    assert len(list((shapes_root / "val2017").glob("*.jpg"))) == 3


def test_annotations_load_with_pycocotools_and_masks_match(shapes_root):
    coco = COCO(str(shapes_root / "annotations/instances_train2017.json"))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(CATEGORIES)
    anns = coco.loadAnns(coco.getAnnIds())
    assert anns and len({a["id"] for a in anns}) == len(anns)
    for ann in anns:
        x, y, w, h = ann["bbox"]
        assert x >= 0 and y >= 0 and x + w <= 96 and y + h <= 96 and w > 4 and h > 4
        mask = coco.annToMask(ann)
        # Rasterised polygon area agrees with the stored area (a few boundary pixels apart).
        assert abs(int(mask.sum()) - ann["area"]) < 0.25 * ann["area"] + 20
        _ys, xs = np.nonzero(mask)
        assert xs.min() >= int(x) - 1 and xs.max() <= x + w + 1


def test_val_ids_follow_train_ids(shapes_root):
    train = json.loads((shapes_root / "annotations/instances_train2017.json").read_text())
    val = json.loads((shapes_root / "annotations/instances_val2017.json").read_text())
    assert {i["id"] for i in train["images"]}.isdisjoint({i["id"] for i in val["images"]})


def test_deterministic_and_reused(tmp_path, shapes_root):
    again = make_coco_shapes(tmp_path / "again", num_train=6, num_val=3, image_size=96)
    for split in ("train", "val"):
        rel = f"annotations/instances_{split}2017.json"
        assert (again / rel).read_text() == (shapes_root / rel).read_text()
    # A complete data set is reused; other arguments on the same root are refused.
    assert make_coco_shapes(again, num_train=6, num_val=3, image_size=96) == again
    with pytest.raises(ValueError) as info:
        make_coco_shapes(again, num_train=7, num_val=3, image_size=96)
    assert_names(info, str(again))


def test_never_writes_into_a_directory_it_did_not_create(tmp_path):
    real = tmp_path / "coco"
    (real / "annotations").mkdir(parents=True)
    user_file = real / "annotations" / "instances_train2017.json"
    user_file.write_text('{"user": "data"}')
    with pytest.raises(ValueError) as info:
        make_coco_shapes(real, num_train=2, num_val=1, image_size=32)
    assert_names(info, str(real))
    assert user_file.read_text() == '{"user": "data"}'
    assert sorted(p.name for p in real.rglob("*")) == ["annotations", "instances_train2017.json"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError) as info:
        make_coco_shapes(tmp_path / "file", num_train=2, num_val=1, image_size=32)
    assert_names(info, str(tmp_path / "file"))
    assert (tmp_path / "file").read_text() == "x"


def test_claims_new_or_empty_directories_and_regenerates_only_its_own(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    made = make_coco_shapes(empty, num_train=2, num_val=1, image_size=32)
    assert json.loads((made / ".lightly_matrix_coco_shapes").read_text())["num_train"] == 2
    assert check_shapes_root(made, **PARAMS_2_1_32) is True
    # Interrupted (no completion marker): ours, so generated again.
    (made / ".complete").unlink()
    (made / "train2017" / "000000000001.jpg").unlink()
    assert check_shapes_root(made, **PARAMS_2_1_32) is False
    make_coco_shapes(made, num_train=2, num_val=1, image_size=32)
    assert (made / "train2017" / "000000000001.jpg").is_file()


PARAMS_2_1_32 = dict(num_train=2, num_val=1, image_size=32, seed=0, max_shapes=4)


@pytest.mark.parametrize(
    "bad", [{"num_train": 0}, {"num_val": -1}, {"max_shapes": 0}, {"num_val": True}]
)
def test_counts_are_positive_ints_checked_before_anything_is_written(tmp_path, bad):
    args = {"num_train": 2, "num_val": 1, "image_size": 32, **bad}
    with pytest.raises(ValueError) as info:
        make_coco_shapes(tmp_path / "shapes", **args)
    (name,) = bad
    assert_names(info, name, repr(bad[name]))
    assert not (tmp_path / "shapes").exists()
