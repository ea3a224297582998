"""One atomic write for the package: old content survives a failing or killed writer."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lightly_matrix.utils.io import (
    atomic_torch_save,
    atomic_write,
    atomic_write_text,
    current_umask,
    write_json_atomic,
)

PACKAGE = Path(__file__).resolve().parents[2] / "lightly_matrix"


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_writes_and_replaces(tmp_path):
    target = tmp_path / "sub" / "out.txt"  # the folder is created
    atomic_write_text(target, "first")
    atomic_write_text(target, "second")
    assert target.read_text() == "second"
    assert _leftovers(target.parent) == []


def test_a_raising_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "metrics.json"
    write_json_atomic(target, {"epoch": 1})

    def half_then_fail(f):
        f.write(b'{"epoch": 2, "trunc')
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == '{\n  "epoch": 1\n}\n'
    assert _leftovers(tmp_path) == []
    # A payload JSON cannot encode fails the same way.
    with pytest.raises(TypeError):
        write_json_atomic(target, {"x": object()})
    assert target.read_text() == '{\n  "epoch": 1\n}\n'


def test_a_killed_writer_leaves_the_old_file(tmp_path):
    """SIGKILL in the middle of the write (no cleanup can run): the target is untouched."""
    target = tmp_path / "last.ckpt"
    target.write_bytes(b"old checkpoint")
    script = (
        "import os, signal, sys\n"
        "from lightly_matrix.utils.io import atomic_write\n"
        "def write(f):\n"
        "    f.write(b'new, but only half of it')\n"
        "    f.flush()\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "atomic_write(sys.argv[1], write)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    done = subprocess.run([sys.executable, "-c", script, str(target)], env=env, timeout=60)
    assert done.returncode == -9
    assert target.read_bytes() == b"old checkpoint"
    (partial,) = _leftovers(tmp_path)  # a hidden temporary, never the target's name
    assert partial.startswith(".last.ckpt.")


@pytest.mark.parametrize("name", ["a" * 250 + ".json", "é" * 127 + "x"])  # 255 bytes each
def test_a_name_of_the_longest_length_is_written(tmp_path, name):
    assert len(name.encode()) == 255
    assert atomic_write_text(tmp_path / name, "x").read_text() == "x"
    assert atomic_write_text(tmp_path / name, "y").read_text() == "y"
    with pytest.raises(FileExistsError):
        atomic_write_text(tmp_path / name, "z", replace=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_permissions_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        assert current_umask() == 0o027
        path = atomic_write_text(tmp_path / "report.html", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # not mkstemp's 0600


def test_torch_save_round_trip(tmp_path):
    payload = {"state_dict": {"w": torch.arange(6.0).reshape(2, 3)}, "epoch": 3}
    saved = atomic_torch_save(payload, tmp_path / "a.ckpt")
    loaded = torch.load(saved, weights_only=True)
    assert loaded["epoch"] == 3 and torch.equal(
        loaded["state_dict"]["w"], payload["state_dict"]["w"]
    )
    assert _leftovers(tmp_path) == []


def test_unwritable_folder_is_an_oserror_and_changes_nothing(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "x.json").write_text("old")
    folder.chmod(0o555)
    try:
        with pytest.raises(PermissionError):
            write_json_atomic(folder / "x.json", {})
    finally:
        folder.chmod(0o755)
    assert (folder / "x.json").read_text() == "old"


def test_no_other_module_writes_files_atomically_by_hand():
    """Temporary-file-and-rename, fsync and umask reads live in utils/io.py alone."""
    by_hand = re.compile(r"os\.umask\(|os\.fsync\(|mkstemp\(|\.tmp[\"'-]|\.replace\(tmp")
    offenders = [
        f"{path.relative_to(PACKAGE)}:{number}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != PACKAGE / "utils" / "io.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if by_hand.search(line)
    ]
    assert offenders == []
