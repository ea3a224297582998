"""The COCO check: a dataset that cannot train or score is refused in one line before training."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from messages import assert_names
from PIL import Image
from pycocotools import mask as mask_util

from lightly_matrix.cli import UserError
from lightly_matrix.cli import main as cli_main
from lightly_matrix.data.coco_shapes import make_coco_shapes
from lightly_matrix.transfer import DEMO_CONFIG, coco_check


def _edit(root, split, change):
    path = root / "annotations" / f"instances_{split}2017.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return path


def _set(key, value):
    def change(data):
        for ann in data["annotations"]:
            ann[key] = value(ann) if callable(value) else value

    return change


def _drop(key):
    def change(data):
        for ann in data["annotations"]:
            del ann[key]

    return change


def _rle(segmentation):
    return lambda data: data["annotations"][0].update(segmentation=segmentation)


BROKEN = {
    "val_unknown_category": ("val", _set("category_id", 99), ("category_id", "99")),
    "string_category": ("val", _set("category_id", lambda a: str(a["category_id"])), ("id '",)),
    "string_area": ("train", _set("area", "12"), ("area that is not a number", "area '12'")),
    "zero_area": ("val", _set("area", 0), ("none of", "area <= 0", "give it annotations")),
    "string_iscrowd": ("train", _set("iscrowd", "0"), ("not 0 or 1", "iscrowd '0'")),
    "resized": ("val", lambda d: d["images"][1].update(height=96), ("48x96 declared, 48x48",)),
    "val_no_annotations": ("val", lambda d: d.update(annotations=[]), ("none of its 0",)),
    "val_only_crowd": ("val", _set("iscrowd", 1), ("none of", "crowd")),
    "train_only_crowd": ("train", _set("iscrowd", 1), ("none of", "train")),
    "negative_boxes": ("train", _set("bbox", [1, 1, -5, 4]), ("boxes", "-5")),
    "nan_boxes": ("train", _set("bbox", [1, 1, float("nan"), 4]), ("boxes", "nan")),
    "float32_overflow": ("train", _set("bbox", [1, 1, 1e308, 4]), ("boxes", "1e+308")),
    "string_image_id": (
        "val",
        lambda d: [i.update(id=str(i["id"])) for i in d["images"]],
        ("not listed", "1 is not '1'"),
    ),
    "short_polygons": ("train", _set("segmentation", [[1, 1, 5, 5]]), ("3 points",)),
    "one_image_id": ("train", lambda d: [i.update(id=1) for i in d["images"]], ("share",)),
    "one_category_id_twice": (
        "val",
        lambda d: d["categories"][1].update(id=d["categories"][0]["id"]),
        ("categories share their id", "each of the categories a unique id"),
    ),
    "one_file_twice_dotted": (
        "train",
        lambda d: d["images"][1].update(file_name="./" + d["images"][0]["file_name"]),
        ("images share their file_name", "give each of the images a unique file_name"),
    ),
    "float32_polygon": ("val", _set("segmentation", [[1e39, 1, 5, 5, 9, 1]]), ("float32",)),
    "one_file_twice": (
        "val",
        lambda d: d["images"][1].update(file_name=d["images"][0]["file_name"]),
        ("images share their file_name with another", "unique file_name"),
    ),
    "one_annotation_id": (
        "train",
        lambda d: [a.update(id=7) for a in d["annotations"]],
        ("annotations share their id", "id 7"),
    ),
    "file_name_outside": (
        "train",
        lambda d: d["images"][0].update(file_name="../val2017/" + d["images"][0]["file_name"]),
        ("outside", "relative"),
    ),
    "no_bbox": ("train", _drop("bbox"), ("lack 'bbox'",)),
    "no_segmentation": ("val", _drop("segmentation"), ("lack 'segmentation'",)),
    "foreign_category": (
        "val",
        lambda d: d["categories"][0].update(name="zebra"),
        ("zebra", "classes"),
    ),
    "reversed_categories": (
        "train",
        lambda d: d["categories"].reverse(),
        ("out of the config's class order", "list them as rectangle, ellipse, triangle"),
    ),
    "repeated_category": (
        "train",
        lambda d: d["categories"][1].update(name=d["categories"][0]["name"]),
        ("repeat",),
    ),
    "empty_train": ("train", lambda d: d.update(images=[], annotations=[]), ("no images",)),
    "unlisted_image": ("train", _set("image_id", 12345), ("12345", "not listed")),
    "rle_bad_counts": ("train", _rle({"size": [48, 48], "counts": "!!!bad"}), ("RLE", "id 1")),
    "rle_short_string": ("val", _rle({"size": [48, 48], "counts": "1"}), ("RLE", "just one")),
    "rle_runs_overflow": ("train", _rle({"size": [48, 48], "counts": [3, 3000]}), ("RLE",)),
    "rle_negative_runs": ("train", _rle({"size": [48, 48], "counts": [-1, 2305]}), ("RLE",)),
    "rle_other_size": ("train", _rle({"size": [24, 96], "counts": [2304]}), ("height, width",)),
    "boxes_outside": ("val", _set("bbox", [1000, 1000, 20, 20]), ("outside their image", "48x48")),
    "one_box_outside": (
        "train",
        lambda d: d["annotations"][0].update(bbox=[-30, 2, 20, 20]),
        ("boxes lie wholly outside their image (just one: id", "[-30, 2, 20, 20]"),
    ),
}


def test_an_unused_category_outside_the_classes_is_accepted(root):
    """mmdet reads only the config's classes; one without annotations drops nothing (p43)."""
    star = {"id": 9, "name": "star", "supercategory": "shape"}
    _edit(root, "train", lambda d: d["categories"].insert(1, star))
    assert check(root) == 0


@pytest.fixture
def root(tmp_path):
    return make_coco_shapes(tmp_path / "coco", num_train=4, num_val=2, image_size=48)


def check(root, config=DEMO_CONFIG):
    return coco_check.run(argparse.Namespace(coco_root=str(root), config=config))


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_dataset_that_cannot_train_or_score_is_one_line(root, case):
    split, change, tokens = BROKEN[case]
    path = _edit(root, split, change)
    with pytest.raises(UserError) as info:
        check(root)
    assert_names(info, str(path), *tokens)


def test_a_json_with_a_byte_order_mark_is_refused(root):
    path = root / "annotations" / "instances_val2017.json"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # pycocotools' json.load fails on it
    with pytest.raises(UserError) as info:
        check(root)
    assert_names(info, str(path), "BOM", "without")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])  # with and without a BOM
def test_a_json_in_utf16_says_to_re_save_it_as_utf8(root, encoding):
    path = root / "annotations" / "instances_train2017.json"
    path.write_bytes(path.read_text().encode(encoding))
    with pytest.raises(UserError) as info:
        check(root)
    assert_names(info, str(path), "re-save it as UTF-8")


def test_images_missing_on_disk_are_counted_and_named(root):
    first, second = sorted((root / "val2017").iterdir())
    first.unlink(), second.unlink()
    with pytest.raises(UserError) as info:
        check(root)
    assert_names(info, "2 images are missing", first.name)


def test_a_folder_named_like_an_image_is_missing(root):
    image = sorted((root / "train2017").iterdir())[0]
    image.unlink()
    image.mkdir()
    with pytest.raises(UserError) as info:
        check(root)
    assert_names(info, "missing", image.name)


@pytest.mark.parametrize("keep", [0, 50, 0.5])
def test_a_truncated_or_empty_image_is_refused_before_training(root, keep):
    image = sorted((root / "val2017").iterdir())[1]
    data = image.read_bytes()
    image.write_bytes(data[: int(keep * len(data)) if isinstance(keep, float) else keep])
    with pytest.raises(UserError) as info:
        check(root)
    assert_names(info, "truncated or unreadable", image.name, "re-download")


def test_png_images_and_rle_masks_that_fill_their_image_pass(root):
    first, second = sorted((root / "train2017").iterdir())[:2]
    Image.open(first).save(first, format="PNG")  # read by content, whatever the name
    Image.open(second).save(second, format="PNG")
    second.write_bytes(second.read_bytes()[:-12])  # no IEND
    with pytest.raises(UserError) as info:
        check(root)
    assert_names(info, "just one: " + second.name)
    Image.open(first).save(second, format="PNG")
    mask = np.zeros((48, 48), np.uint8, order="F")
    mask[5:20, 10:30] = 1
    compressed = mask_util.encode(mask)["counts"].decode()
    _edit(root, "train", _rle({"size": [48, 48], "counts": compressed}))
    _edit(root, "val", _rle({"size": [48, 48], "counts": [490, 15, 33, 15, 1751]}))
    assert check(root) == 0


def test_a_sound_dataset_passes(root, capsys):
    assert check(root) == 0
    assert "fit for mask-rcnn_r18_fpn_demo_coco-shapes" in capsys.readouterr().out
    # COCO's 80 classes (the default config) are not the shapes' 3.
    with pytest.raises(UserError) as info:
        check(root, config=None)
    assert_names(info, "80 classes")


def test_transfer_checks_the_data_before_writing_anything(root, tmp_path, capsys):
    _edit(root, "val", _set("iscrowd", 1))
    work = tmp_path / "w"
    argv = ["transfer", "--config", DEMO_CONFIG, "--coco-root", str(root), "--work-dir", str(work)]
    assert cli_main(argv) == 2
    assert_names(capsys.readouterr().err, "instances_val2017.json", "none of")
    assert not work.exists()
