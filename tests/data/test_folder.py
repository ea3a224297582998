"""Image folders: damaged files are named or skipped, deep and float images keep their range."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from messages import assert_names
from PIL import Image

from lightly_matrix.cli import UserError
from lightly_matrix.data.folder import ImageFolderDataset, UnreadableImageError


def _write_rgb(path: Path, size: int = 48, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _truncate(path: Path, keep: float | int) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: keep if isinstance(keep, int) else int(len(data) * keep)])
    return path


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_data_is_named_when_decoded(tmp_path: Path, suffix: str) -> None:
    _write_rgb(tmp_path / f"good{suffix}")
    bad = _truncate(_write_rgb(tmp_path / f"truncated{suffix}", seed=1), 0.5)
    dataset = ImageFolderDataset(tmp_path)  # headers are fine
    index = dataset.files.index(str(bad))
    with pytest.raises(UnreadableImageError) as info:
        dataset[index]
    assert info.value.path == bad
    assert_names(info, f"truncated{suffix}")
    assert dataset[1 - index][0].size == (48, 48)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_header_is_named_when_indexed(tmp_path: Path, suffix: str) -> None:
    _write_rgb(tmp_path / f"good{suffix}")
    _truncate(_write_rgb(tmp_path / f"cut{suffix}"), 12)
    with pytest.raises(UnreadableImageError) as info:
        ImageFolderDataset(tmp_path)
    assert_names(info, f"cut{suffix}", "skip_bad_images")  # the file and the way past it


def test_skip_bad_images(tmp_path: Path) -> None:
    for name in ("a", "b"):
        for i in range(2):
            _write_rgb(tmp_path / name / f"{i}.png", seed=i)
    cut = _truncate(_write_rgb(tmp_path / "a" / "2_cut.png"), 12)
    late = _truncate(_write_rgb(tmp_path / "b" / "2_late.png"), 0.5)
    (tmp_path / "b" / "3_text.png").write_text("not an image")

    dataset = ImageFolderDataset(tmp_path, skip_bad_images=True)
    assert dataset.skipped == [cut, tmp_path / "b" / "3_text.png"]
    assert len(dataset) == 5 and dataset.classes == ["a", "b"]
    assert dataset.labels.tolist() == [0, 0, 1, 1, 1]

    # The truncated data is found when decoded: named in a warning, replaced by the next image.
    index = dataset.files.index(str(late))
    with pytest.warns(UserWarning, match=r"2_late\.png"):
        image, label = dataset[index]
    assert image.size == (48, 48) and label == int(dataset.labels[(index + 1) % len(dataset)])
    assert dataset.skipped[-1] == late
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # already known: skipped silently
        dataset[index]
    assert dataset.skipped.count(late) == 1

    # Without the option the same folder fails on the first bad header.
    with pytest.raises(UnreadableImageError, match=r"2_cut\.png"):
        ImageFolderDataset(tmp_path)


def test_skip_bad_images_with_nothing_readable(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_text("not an image")
    with pytest.raises(UserError) as info:
        ImageFolderDataset(tmp_path, skip_bad_images=True)
    assert_names(info, str(tmp_path))


def _only_image(tmp_path: Path) -> np.ndarray:
    image, _ = ImageFolderDataset(tmp_path)[0]
    assert image.mode == "RGB"
    rgb = np.asarray(image)
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 0] == rgb[..., 2]).all()
    return rgb[..., 0]


def test_sixteen_bit_png_gradient_maps_to_eight_bit_gradient(tmp_path: Path) -> None:
    ramp = (np.arange(256, dtype=np.uint16) * 257).reshape(1, 256).repeat(4, axis=0)  # 0..65535
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode in ("I;16", "I")
    np.testing.assert_array_equal(_only_image(tmp_path), np.arange(256)[None].repeat(4, axis=0))


def test_float_tiff_in_unit_range(tmp_path: Path) -> None:
    ramp = np.linspace(0.0, 1.0, 101, dtype=np.float32).reshape(1, 101).repeat(3, axis=0)
    Image.fromarray(ramp, mode="F").save(tmp_path / "float.tif")
    assert Image.open(tmp_path / "float.tif").mode == "F"
    expected = np.rint(ramp.astype(np.float64) * 255).astype(np.uint8)
    np.testing.assert_array_equal(_only_image(tmp_path), expected)


def test_float_and_int_images_outside_the_standard_ranges_are_min_max_scaled(
    tmp_path: Path,
) -> None:
    values = np.array([[-2.0, 0.0, 2.0, np.nan]], dtype=np.float32)
    Image.fromarray(values, mode="F").save(tmp_path / "f.tif")
    np.testing.assert_array_equal(_only_image(tmp_path), [[0, 128, 255, 0]])
    (tmp_path / "f.tif").unlink()
    Image.fromarray(np.array([[-10, 0, 10]], dtype=np.int32), mode="I").save(tmp_path / "i.tif")
    np.testing.assert_array_equal(_only_image(tmp_path), [[0, 128, 255]])


def test_decompression_bomb_is_named_with_a_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = _write_rgb(tmp_path / "big.png", size=20)  # 400 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # error above 2 x 100 pixels
    with pytest.raises(UnreadableImageError, match=r"big\.png.*MAX_IMAGE_PIXELS"):
        ImageFolderDataset(tmp_path)
    dataset = ImageFolderDataset(tmp_path, check=False)
    with pytest.raises(UnreadableImageError) as info:
        dataset[0]
    assert_names(info, "big.png", "resize")
    _write_rgb(tmp_path / "small.png", size=8)
    assert ImageFolderDataset(tmp_path, skip_bad_images=True).skipped == [big]


def test_decompression_bomb_warning_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_rgb(tmp_path / "large.png", size=12)  # 144 pixels: over the limit, under twice it
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.warns(Image.DecompressionBombWarning, match=r"large\.png.*MAX_IMAGE_PIXELS"):
        dataset = ImageFolderDataset(tmp_path)
    with pytest.warns(Image.DecompressionBombWarning, match=r"large\.png"):
        image, _ = dataset[0]
    assert image.size == (12, 12)
