"""The run folder's index of checked images: reused, updated when the folder changes, per rank."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from messages import assert_names
from PIL import Image

from lightly_matrix.cli import UserError
from lightly_matrix.data import folder
from lightly_matrix.data.folder import (
    ImageFolderDataset,
    UnreadableImageError,
    checked_folder,
    find_unreadable,
    index_file,
    load_image,
    other_rank_from_env,
    scan_folder_stats,
)


def _write(path: Path, seed: int = 0, size: int = 12) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _folder(root: Path, classes: int = 3, per_class: int = 4) -> Path:
    for c in range(classes):
        for i in range(per_class):
            _write(root / f"c{c}" / f"{i}.png", seed=10 * c + i)
    return root


@pytest.fixture
def headers_read(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every header the check reads, in this process."""
    read: list[str] = []
    real = folder._check_chunk

    def spy(paths: list[str]) -> tuple[list, list]:
        read.extend(paths)
        return real(paths)

    monkeypatch.setattr(folder, "_check_chunk", spy)
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.delenv("NODE_RANK", raising=False)
    monkeypatch.delenv("SLURM_PROCID", raising=False)
    return read


def test_scan_matches_sorted_rglob(tmp_path: Path) -> None:
    """The listing keeps the order (and so the data order of a resumed run) of ``sorted(rglob)``,
    without hidden files and folders (the probe of issue 32 found ``.hidden/`` trained on)."""
    for name in ("b/z.png", "b/a/x.JPG", "b/a0.png", "b/.hidden/y.png", "a/1.jpeg", "a/.x.png"):
        _write(tmp_path / name)
    (tmp_path / "a" / "notes.txt").write_text("no image")
    (tmp_path / ".cache").mkdir()
    scan = scan_folder_stats(tmp_path)
    paths, labels, classes = [Path(p) for p in scan.paths], scan.labels, scan.classes
    expected = {
        name: sorted(
            p
            for p in (tmp_path / name).rglob("*")
            if p.is_file() and p.suffix.lower() in (".png", ".jpg", ".jpeg")
            if not any(part.startswith(".") for part in p.relative_to(tmp_path).parts)
        )
        for name in ("a", "b")
    }
    assert classes == ["a", "b"]
    assert paths == expected["a"] + expected["b"]
    assert labels == [0] * len(expected["a"]) + [1] * len(expected["b"])


def test_second_start_reads_no_header(tmp_path: Path, headers_read: list[str]) -> None:
    data, run = _folder(tmp_path / "data"), tmp_path / "run"
    bad = data / "c1" / "9_text.png"
    bad.write_text("not an image")
    first = checked_folder(data, run)
    assert first.checked == len(headers_read) == 13
    assert [first.scan.paths[i] for i in first.unreadable] == [str(bad)]
    assert first.index == index_file(run, data) and first.index.is_file()

    headers_read.clear()
    second = checked_folder(data, run)
    assert headers_read == [] and second.checked == 0
    assert second.scan == first.scan and second.unreadable == first.unreadable
    # The data set over the index is the one without it, bad file recorded and skipped alike.
    with pytest.raises(UnreadableImageError, match=r"9_text\.png"):
        ImageFolderDataset(data, index_dir=run)
    reused = ImageFolderDataset(data, skip_bad_images=True, index_dir=run)
    plain = ImageFolderDataset(data, skip_bad_images=True)
    assert headers_read == first.scan.paths  # only the plain data set read them
    assert reused.files == plain.files and reused.skipped == plain.skipped == [bad]
    assert (reused.labels == plain.labels).all() and reused.classes == plain.classes


def test_changed_folder_is_rechecked(tmp_path: Path, headers_read: list[str]) -> None:
    data, run = _folder(tmp_path / "data"), tmp_path / "run"
    checked_folder(data, run)
    headers_read.clear()
    added = _write(data / "c2" / "new.png", seed=99)
    (data / "c0" / "0.png").unlink()
    rewritten = data / "c1" / "1.png"
    rewritten.write_bytes(b"no longer an image")
    touched = data / "c1" / "2.png"
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))

    again = checked_folder(data, run)
    assert sorted(headers_read) == sorted(map(str, (added, rewritten, touched)))
    assert str(data / "c0" / "0.png") not in again.scan.paths
    assert [again.scan.paths[i] for i in again.unreadable] == [str(rewritten)]
    # The index now describes the changed folder: a third start reads nothing.
    headers_read.clear()
    assert checked_folder(data, run).checked == 0 and headers_read == []
    # A file fixed after being recorded as bad is read again and no longer skipped.
    _write(rewritten, seed=5)
    assert checked_folder(data, run).unreadable == {}


def test_damaged_or_foreign_index_is_rebuilt(tmp_path: Path, headers_read: list[str]) -> None:
    data, run = _folder(tmp_path / "data", classes=1), tmp_path / "run"
    path = checked_folder(data, run).index
    for text in ("{truncated", json.dumps({"format": 1, "root": "/elsewhere", "files": []}), "[]"):
        path.write_text(text)
        headers_read.clear()
        assert checked_folder(data, run).checked == 4 and len(headers_read) == 4
        assert json.loads(path.read_text())["root"] == str(data.resolve())


def test_index_is_per_folder(tmp_path: Path) -> None:
    run = tmp_path / "run"
    a, b = _folder(tmp_path / "x" / "data", 1, 2), _folder(tmp_path / "y" / "data", 1, 3)
    assert index_file(run, a) != index_file(run, b)
    assert len(checked_folder(a, run).scan.paths) == 2
    assert len(checked_folder(b, run).scan.paths) == 3
    assert checked_folder(a, run).checked == 0


def test_file_damaged_after_the_index_is_named_or_skipped_when_loaded(tmp_path: Path) -> None:
    """Size and mtime unchanged (the index cannot see it): found when the image is decoded."""
    data, run = _folder(tmp_path / "data", classes=2, per_class=3), tmp_path / "run"
    checked_folder(data, run)
    victim = data / "c1" / "0.png"
    stat = victim.stat()
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 3 :] = bytes(len(raw) - len(raw) // 3)  # same size, pixel data zeroed
    victim.write_bytes(bytes(raw))
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    strict = ImageFolderDataset(data, index_dir=run)
    assert strict.checked is not None and strict.checked.checked == 0
    position = strict.files.index(str(victim))
    with pytest.raises(UnreadableImageError, match=r"0\.png") as info:
        strict[position]
    assert info.value.path == victim

    lenient = ImageFolderDataset(data, skip_bad_images=True, index_dir=run)
    with pytest.warns(UserWarning, match=r"skipping unreadable image .*0\.png"):
        image, label = lenient[position]
    assert image.size == (12, 12) and label == 1  # the next readable image of the class
    assert lenient.skipped == [victim]


def test_unreadable_error_pickles_with_its_reason(tmp_path: Path) -> None:
    """DataLoader workers send the error to the main process: path and reason must survive."""
    import pickle

    (tmp_path / "x.png").write_text("not an image")
    with pytest.raises(UnreadableImageError) as info:
        load_image(tmp_path / "x.png")
    copy = pickle.loads(pickle.dumps(info.value))
    original = info.value
    assert (copy.path, copy.reason, str(copy)) == (original.path, original.reason, str(original))


def test_threaded_check_equals_one_file_at_a_time(tmp_path: Path) -> None:
    """Hundreds of files over many chunks and threads: the same bad files, in the same order."""
    paths = []
    for i in range(600):
        path = tmp_path / f"{i:03d}.png"
        if i % 97 == 5:
            path.write_bytes(b"\x89PNG broken" if i % 2 else b"")
        else:
            _write(path, seed=i, size=4)
        paths.append(path)
    expected = []
    for path in paths:
        try:
            with Image.open(path):
                pass
        except OSError:
            expected.append(path)
    assert len(expected) == 7
    for threads in (1, 8):
        assert [paths[i] for i in find_unreadable(paths, threads=threads)] == expected


@pytest.mark.parametrize(
    ("env", "rank"),
    [
        ({}, ""),
        ({"SLURM_PROCID": "0", "LOCAL_RANK": "0", "NODE_RANK": "0"}, ""),
        ({"LOCAL_RANK": "1"}, "LOCAL_RANK=1"),
        ({"NODE_RANK": "1", "LOCAL_RANK": "0"}, "NODE_RANK=1 LOCAL_RANK=0"),  # a later node
        ({"RANK": "3", "LOCAL_RANK": "1"}, "RANK=3"),  # torchrun
        ({"RANK": "0", "LOCAL_RANK": "0", "GROUP_RANK": "0"}, ""),
        ({"SLURM_PROCID": "2"}, "SLURM_PROCID=2"),  # srun, one task per device
        ({"SLURM_PROCID": "0", "LOCAL_RANK": "1"}, "LOCAL_RANK=1"),  # Lightning's in a SLURM job
    ],
)
def test_rank_from_env(monkeypatch: pytest.MonkeyPatch, env: dict, rank: str) -> None:
    for key in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert other_rank_from_env() == rank


def test_other_ranks_take_rank_zero_index_and_never_check(
    tmp_path: Path, headers_read: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, run = _folder(tmp_path / "data", classes=2, per_class=2), tmp_path / "run"
    (data / "c0" / "bad.png").write_text("not an image")
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(UserError) as info:
        checked_folder(data, run, wait_s=0.2)  # no index yet: waits, then says why
    assert_names(info, "LOCAL_RANK=1")
    assert headers_read == [] and not (run / folder.INDEX_DIR).exists()

    monkeypatch.setenv("LOCAL_RANK", "0")
    made = checked_folder(data, run)
    headers_read.clear()
    monkeypatch.setenv("LOCAL_RANK", "1")
    taken = checked_folder(data, run, wait_s=0.2)
    assert headers_read == [] and taken.checked == 0 and taken.rank == "LOCAL_RANK=1"
    assert taken.unreadable == made.unreadable and taken.scan == made.scan
    assert "rank 0's index" in taken.summary()
    # A folder changed after rank 0's check is not silently trusted.
    _write(data / "c1" / "late.png")
    with pytest.raises(UserError) as info:
        checked_folder(data, run, wait_s=0.2)
    assert_names(info, str(data))
