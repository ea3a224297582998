"""``export`` where the output is no plain file, the disk fills up, a second export races the
first, the input is the output through transfer's path, or ``--arch`` names the wrong family."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import timm
import torch
import torchvision
from messages import assert_names, cli_error
from torch import nn

from lightly_matrix.cli import main as cli_main
from lightly_matrix.errors import UserError
from lightly_matrix.export import export_backbone, load_backbone, save_backbone
from lightly_matrix.utils.lock import folder_lock


@pytest.fixture(scope="module")
def resnet_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("in") / "r18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


def special_outputs(folder: Path) -> dict[str, Path]:
    """Paths that are no regular file: --force must never replace them."""
    paths = {"fifo": folder / "fifo", "to_dev_null": folder / "nulldev_link"}
    os.mkfifo(paths["fifo"])
    paths["to_dev_null"].symlink_to("/dev/null")
    (folder / "dangling").symlink_to(folder / "nowhere.pth")
    paths["dangling"] = folder / "dangling"
    if os.geteuid() == 0:  # only root may create a device node: the issue's /dev/null case
        os.mknod(folder / "nulldev", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        paths["chardev"] = folder / "nulldev"
    return paths


@pytest.mark.parametrize("fmt", ["mmdet", "torchvision"])
def test_force_replaces_regular_files_only(resnet_file, tmp_path, capsys, fmt):
    for name, out in special_outputs(tmp_path).items():
        before = os.lstat(out)
        argv = ["export", str(resnet_file), "--out", str(out), "--force", "--format", fmt]
        err = cli_error(capsys, cli_main(argv), str(out), "not a regular file", command="export")
        assert name != "chardev" or "character device" in err
        after = os.lstat(out)
        assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino), name
    assert not (tmp_path / "nowhere.pth").exists()


def test_a_full_disk_is_one_line_naming_the_file_and_the_old_file_stays(resnet_file, tmp_path):
    out = tmp_path / "kept.pth"
    out.write_bytes(b"previous export")
    script = textwrap.dedent(
        f"""
        import resource, sys
        from lightly_matrix.cli import main
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))  # as `ulimit -f 1024`
        sys.exit(main(["export", {str(resnet_file)!r}, "--out", {str(out)!r}, "--force"]))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "enforce fail" not in done.stderr, done.stderr
    assert_names(done.stderr.strip().splitlines()[-1], f"cannot write {out}", "file size limit")
    assert out.read_bytes() == b"previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.pth"]


def test_resnet_arch_on_vit_weights_says_what_the_file_is(tmp_path, capsys):
    vit = timm.create_model("vit_tiny_patch16_224", img_size=32, num_classes=0)
    torch.save(vit.state_dict(), tmp_path / "x.pth")
    argv = ["export", str(tmp_path / "x.pth"), "--out", str(tmp_path / "o.pth")]
    cli_error(
        capsys,
        cli_main([*argv, "--arch", "resnet50"]),
        "'resnet50' names no timm ViT",
        "width 192, depth 12",
        "--arch vit_tiny_patch16_224",
        command="export",
    )


def test_the_printed_torchvision_recipe_loads_strictly(tmp_path, capsys):
    torch.manual_seed(0)
    resnet = torchvision.models.resnet18(zero_init_residual=False)
    for m in resnet.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
    torch.save(resnet.state_dict(), tmp_path / "in.pth")
    out = tmp_path / "tv.pth"
    argv = ["export", str(tmp_path / "in.pth"), "--out", str(out), "--format", "torchvision"]
    assert cli_main(argv) == 0
    printed = capsys.readouterr().out.splitlines()
    recipe = [
        line.strip()
        for line in printed[printed.index(next(x for x in printed if x.startswith("use"))) + 1 :]
    ]
    assert "strict=False" not in "\n".join(recipe)
    scope = {"torch": torch, "torchvision": torchvision}
    exec("\n".join(recipe), scope)  # what a user pastes
    resnet.fc = nn.Identity()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(scope["model"].eval()(x), resnet.eval()(x), rtol=0, atol=0)
    from lightly_matrix.export import plain

    assert "model.fc = torch.nn.Identity()" in (plain.__doc__ or "")


def test_an_export_waits_for_nobody_and_never_shares_a_folder(resnet_file, tmp_path):
    out = tmp_path / "exp" / "b.pth"
    out.parent.mkdir()
    with folder_lock(out.parent), pytest.raises(UserError) as info:
        export_backbone(resnet_file, out, verify=False)
    assert_names(info, str(out.parent), f"pid {os.getpid()}")
    assert not out.exists()


def test_two_exports_at_once_never_both_claim_the_file(resnet_file, tmp_path):
    out = tmp_path / "same.pth"
    command = [
        sys.executable,
        "-m",
        "lightly_matrix",
        "export",
        str(resnet_file),
        "--out",
        str(out),
    ]
    runs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    done = [(run.wait(), *run.communicate()) for run in runs]
    assert sorted(status for status, _, _ in done) == [0, 2], done
    refused = next(err for status, _, err in done if status == 2)
    assert "already exists" in refused or "in use by another" in refused
    assert load_backbone(out).architecture == "resnet18"


def test_the_converted_export_is_never_written_over_its_own_input(resnet_file, tmp_path):
    """What transfer does with `wd/X/backbone.pth --work-dir wd/X`: convert, then save with
    force to `wd/X/backbone.pth`."""
    work_dir = tmp_path / "wd" / "X"
    work_dir.mkdir(parents=True)
    user_file = work_dir / "backbone.pth"
    user_file.write_bytes(resnet_file.read_bytes())
    backbone = load_backbone(user_file)
    with pytest.raises(UserError) as info:
        save_backbone(backbone, user_file, force=True)
    assert_names(info, str(user_file), "input")
    assert user_file.read_bytes() == resnet_file.read_bytes()


R18 = torchvision.models.resnet18().state_dict()
VIT = timm.create_model("vit_tiny_patch16_224", img_size=32, num_classes=0).state_dict()
EXPORT_META = {"format": "lightly_matrix.mmdet_backbone"}
HOSTILE = {  # input, extra argv, what the one-line refusal names
    "an empty key": ({"": torch.zeros(1)}, [], "no ResNet or ViT"),
    "a 2-D patch embedding": (
        {**VIT, "patch_embed.proj.weight": torch.zeros(192, 768)},
        ["--arch", "vit_tiny_patch16_224"],
        "patch_embed.proj.weight has shape [192, 768]",
    ),
    "an export whose state_dict is a list": (
        {"state_dict": [1], "meta": EXPORT_META},
        [],
        "no backbone weights",
    ),
    "Lightning weights that are no tensors": (
        {"state_dict": {f"backbone.{k}": 3 for k in R18}, "hyper_parameters": {}},
        [],
        "no backbone weights",
    ),
    "ViT blocks without an index": (
        {"patch_embed.proj.weight": torch.zeros(8, 3, 4, 4), "blocks.x": torch.zeros(1)},
        [],
        "pass --arch",
    ),
    "integer weights": ({**R18, "conv1.weight": R18["conv1.weight"].long()}, [], "torch.int64"),
    "--format timm without pos_embed": (
        {k: v for k, v in VIT.items() if k != "pos_embed"},
        ["--arch", "vit_tiny_patch16_224", "--format", "timm"],
        "pos_embed",
    ),
    "--out ending in a slash": (R18, ["--out", "{tmp}/newdir/"], "names a folder"),
    "--out named as the lock file": (R18, ["--out", "{tmp}/.lightly-matrix.lock"], "lock file"),
    "a 300-character --out": (R18, ["--out", "{tmp}/" + "x" * 300], "File name too long"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_inputs_are_refused_in_one_line(tmp_path, capsys, case):
    obj, extra, names = HOSTILE[case]
    torch.save(obj, tmp_path / "in.pth")
    extra = [arg.format(tmp=tmp_path) for arg in extra]
    out = [] if "--out" in extra else ["--out", str(tmp_path / "o.pth")]
    status = cli_main(["export", str(tmp_path / "in.pth"), *out, *extra])
    cli_error(capsys, status, names, command="export")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.pth"]


def test_odd_names_in_a_checkpoint_are_not_taken_for_its_architecture(tmp_path):
    sd = {f"backbone.{k}": v for k, v in R18.items()}
    torch.save({"state_dict": sd, "meta": {**EXPORT_META, "architecture": 5}}, tmp_path / "e.pth")
    torch.save({"state_dict": sd, "hyper_parameters": {"backbone": ["x"]}}, tmp_path / "l.ckpt")
    for name in ("e.pth", "l.ckpt"):
        backbone = load_backbone(tmp_path / name)
        assert (backbone.architecture, backbone.meta["architecture_source"]) == (
            "resnet18",
            "weights",
        )
