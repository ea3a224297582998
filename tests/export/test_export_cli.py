"""``lightly-matrix export`` on hostile input: its own input as --out, unwritable places, folders
and random bytes as checkpoints, and ViT weights that do not say how many heads they have."""

from __future__ import annotations

import os

import pytest
import timm
import torch
import torchvision
from messages import assert_names, cli_error

from lightly_matrix.cli import UserError
from lightly_matrix.cli import main as cli_main
from lightly_matrix.export import load_backbone


def one_line_error(capsys: pytest.CaptureFixture[str], status: int, *tokens: str) -> str:
    return cli_error(capsys, status, *tokens, command="export", only_line=True)


@pytest.fixture
def torchvision_file(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


def test_the_input_is_never_the_output_even_with_force(torchvision_file, capsys):
    before = torchvision_file.read_bytes()
    argv = ["export", str(torchvision_file), "--out", str(torchvision_file), "--force"]
    one_line_error(capsys, cli_main(argv), str(torchvision_file), "--out")
    assert torchvision_file.read_bytes() == before
    # The same file under another name (a hard link) is the input too.
    link = torchvision_file.with_name("link.pth")
    os.link(torchvision_file, link)
    one_line_error(
        capsys, cli_main(["export", str(torchvision_file), "--out", str(link), "--force"])
    )
    assert "fc.weight" in torch.load(link, weights_only=True)


def test_out_that_is_a_folder_or_unwritable_is_one_line(
    torchvision_file, tmp_path, unwritable_dir, capsys
):
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    argv = ["export", str(torchvision_file), "--out", str(folder), "--force"]
    one_line_error(capsys, cli_main(argv), str(folder / "backbone.pth"))
    assert [p.name for p in folder.iterdir()] == ["keep.txt"]
    argv = ["export", str(torchvision_file), "--out", str(unwritable_dir / "b.pth")]
    one_line_error(capsys, cli_main(argv), "--out")
    (tmp_path / "afile").write_text("x")
    argv = ["export", str(torchvision_file), "--out", str(tmp_path / "afile" / "b.pth")]
    one_line_error(capsys, cli_main(argv), str(tmp_path / "afile"))


def test_an_unwritable_out_is_refused_before_the_input_is_read(tmp_path, unwritable_dir, capsys):
    # Before loading (a large checkpoint takes a while): a place that cannot be written is the
    # error, not whatever reading the input would have found.
    argv = ["export", str(tmp_path / "missing.ckpt"), "--out", str(unwritable_dir / "b.pth")]
    err = one_line_error(capsys, cli_main(argv), "--out", "cannot write there")
    assert "missing.ckpt" not in err


def test_a_vit_that_mmdets_pyramid_cannot_take_is_one_line(tmp_path, capsys):
    # pretrain picks patch 3 for 30-pixel images; the simple pyramid needs power-of-two strides.
    vit = timm.create_model("vit_tiny_patch16_224", img_size=30, patch_size=3, num_classes=0)
    torch.save(vit.state_dict(), tmp_path / "vit.pth")
    argv = ["export", str(tmp_path / "vit.pth"), "--out", str(tmp_path / "o.pth")]
    status = cli_main([*argv, "--arch", "vit_tiny_patch16_224"])
    cli_error(capsys, status, "patch size 3 cannot reach stride 4", "--format", command="export")
    assert not (tmp_path / "o.pth").exists()


def test_a_folder_as_checkpoint_is_called_a_folder(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    torch.save({}, run / "last.ckpt")
    err = one_line_error(capsys, cli_main(["export", str(run), "--out", str(tmp_path / "o.pth")]))
    assert "folder" in err and str(run / "last.ckpt") in err and "does not exist" not in err


@pytest.mark.parametrize("head", [b"\x00\x01", b"garbage", b'{"json": 1}'])
def test_bytes_that_are_no_checkpoint_never_suggest_trusting_them(tmp_path, capsys, head):
    path = tmp_path / "x.ckpt"
    path.write_bytes(head + os.urandom(512).replace(b"\x80", b"\x00"))
    err = one_line_error(capsys, cli_main(["export", str(path), "--out", str(tmp_path / "o.pth")]))
    assert "not a checkpoint" in err and "trust" not in err and "pickled" not in err


def vit_with_heads(path, heads: int):
    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", img_size=64, num_heads=heads, num_classes=0)
    torch.save(vit.state_dict(), path)
    return vit


def test_vit_heads_are_never_guessed(tmp_path, capsys):
    """embed 192, depth 12 fits vit_tiny (3 heads), but these weights were trained with 6."""
    vit_with_heads(tmp_path / "vit6.pth", heads=6)
    out = tmp_path / "vit.pth"
    argv = ["export", str(tmp_path / "vit6.pth"), "--out", str(out)]
    one_line_error(capsys, cli_main(argv), "heads", "--arch vit_tiny_patch16_224")
    assert not out.exists()
    # Weights whose user names their model are exported as that model.
    vit_with_heads(tmp_path / "vit3.pth", heads=3)
    argv = ["export", str(tmp_path / "vit3.pth"), "--out", str(out), "--arch"]
    assert cli_main([*argv, "vit_tiny_patch16_224"]) == 0
    assert "vit_tiny_patch16_224 (as --arch says)" in capsys.readouterr().out
    meta = torch.load(out, weights_only=True)["meta"]
    assert (
        meta["architecture"] == "vit_tiny_patch16_224" and meta["architecture_source"] == "--arch"
    )
    # The exported file records it: no --arch needed again, and a contradicting one is refused.
    assert load_backbone(out).meta["architecture_source"] == "checkpoint"
    with pytest.raises(UserError) as info:
        load_backbone(out, arch="vit_small_patch16_224")
    assert_names(info, "vit_tiny_patch16_224", "vit_small_patch16_224")


def test_resnet_architecture_is_read_from_the_weights_and_said_so(torchvision_file, capsys):
    out = torchvision_file.with_name("o.pth")
    assert cli_main(["export", str(torchvision_file), "--out", str(out)]) == 0
    assert "resnet18 (read from the weights)" in capsys.readouterr().out
    assert sorted(p.name for p in out.parent.iterdir()) == ["o.pth", "r18.pth"]  # no lock left
    with pytest.raises(UserError) as info:
        load_backbone(torchvision_file, arch="resnet50")
    assert_names(info, "--arch resnet50", "resnet18")


def test_an_empty_file_is_called_empty(tmp_path, capsys):
    (tmp_path / "e.ckpt").write_bytes(b"")
    argv = ["export", str(tmp_path / "e.ckpt"), "--out", str(tmp_path / "o.pth")]
    one_line_error(capsys, cli_main(argv), str(tmp_path / "e.ckpt"), "empty")
