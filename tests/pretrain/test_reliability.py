"""Off the happy path of ``lightly-matrix pretrain``: kills, signals, divergence, bad inputs and
checkpoints that are not ours. Each end-to-end test runs the real CLI."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from messages import cli_error

from lightly_matrix.cli import main
from lightly_matrix.utils.io import atomic_torch_save

TINY = [
    "--method", "matrix_ssl", "--image-size", "16", "--batch-size", "16", "--no-eval",
    "--hp", "hidden_dim=32", "--hp", "output_dim=32", "--hp", "pred_hidden_dim=16",
]  # fmt: skip
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "lightly_matrix", "pretrain", *args]


def step_of(path: Path) -> int:
    try:
        return int(
            torch.load(path, map_location="cpu", weights_only=True, mmap=True)["global_step"]
        )
    except Exception:  # not written yet
        return -1


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 1-epoch run (2 steps) to resume from or to corrupt."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert (
        main(["pretrain", *TINY, "--epochs", "1", "--limit-train-batches", "2", "--out", str(out)])
        == 0
    )
    return out


# ------------------------------------------------------------------------- no lost training
@pytest.mark.slow
def test_kill_9_in_epoch_3_then_resume_equals_uninterrupted_run(tmp_path: Path) -> None:
    common = [*TINY, "--epochs", "5", "--limit-train-batches", "4", "--checkpoint-every-steps", "1"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(cli(*common, "--out", str(straight)), check=True, env=ENV, capture_output=True)

    process = subprocess.Popen(
        cli(*common, "--out", str(killed)),
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 300
    # Epoch 3 is steps 9..12: stop it as soon as a mid-epoch-3 checkpoint is on disk.
    while (
        step_of(killed / "last.ckpt") < 9 and process.poll() is None and time.monotonic() < deadline
    ):
        time.sleep(0.02)
    process.send_signal(signal.SIGSTOP)
    process.kill()  # SIGKILL: no handler runs
    process.wait()
    assert process.returncode == -signal.SIGKILL
    killed_at = step_of(killed / "last.ckpt")
    assert 9 <= killed_at < 20, f"the kill did not land inside epochs 3-5 (step {killed_at})"

    done = subprocess.run(cli("--resume", str(killed)), env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"step {killed_at}" in done.stdout

    reference = torch.load(straight / "last.ckpt", map_location="cpu", weights_only=True)
    resumed = torch.load(killed / "last.ckpt", map_location="cpu", weights_only=True)
    assert resumed["global_step"] == reference["global_step"] == 20
    assert reference["state_dict"].keys() == resumed["state_dict"].keys()
    for key, value in reference["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key
    ref_opt, res_opt = (
        reference["optimizer_states"][0]["state"],
        resumed["optimizer_states"][0]["state"],
    )
    for index, state in ref_opt.items():
        for name, value in state.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(res_opt[index][name]))


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_and_prints_the_resume_command(
    tmp_path: Path, signum: int, status: int
) -> None:
    out = tmp_path / "run"
    process = subprocess.Popen(
        cli(*TINY, "--epochs", "200", "--limit-train-batches", "3", "--out", str(out)),
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while step_of(out / "last.ckpt") < 3 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    before = step_of(out / "last.ckpt")
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == status, stderr[-3000:]
    assert f"resume with: lightly-matrix pretrain --resume {out}" in stdout
    # SIGTERM (a scheduler's stop) saves and says so exactly as Ctrl-C does.
    name = "SIGINT" if signum == signal.SIGINT else "SIGTERM"
    assert f"interrupted ({name} at epoch" in stdout and f"saved {out / 'last.ckpt'}" in stdout
    assert "Traceback" not in stderr
    saved = step_of(out / "last.ckpt")
    assert saved >= before and saved < 600
    assert not list(out.glob(".*.tmp*")), "a temporary checkpoint was left behind"


def test_atomic_save_keeps_the_previous_file_when_the_write_fails(tmp_path: Path) -> None:
    path = tmp_path / "last.ckpt"
    atomic_torch_save({"step": 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="mid-write"):
        atomic_torch_save({"step": 2, "x": torch.zeros(1000), "bad": Unpicklable()}, path)
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_checkpoint_written_mid_run_with_umask(tmp_path: Path) -> None:
    out = tmp_path / "run"
    old = os.umask(0o022)
    try:
        args = [*TINY, "--epochs", "2", "--limit-train-batches", "2", "--keep-every", "1"]
        assert main(["pretrain", *args, "--out", str(out)]) == 0
    finally:
        os.umask(old)
    assert (out / "last.ckpt").stat().st_mode & 0o777 == 0o644
    # Each epoch end wrote last.ckpt (the snapshot of epoch 1 is a copy of it at that time).
    first = torch.load(
        out / "checkpoints" / "epoch0000.ckpt", map_location="cpu", weights_only=True
    )
    assert first["global_step"] == 2 and first["lightly_matrix"]["method"] == "matrix_ssl"


# ------------------------------------------------------------------------------ divergence
def test_non_finite_training_stops_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    args = [*TINY, "--epochs", "3", "--limit-train-batches", "4", "--lr", "1e30"]
    status = main(["pretrain", *args, "--out", str(out)])
    last = cli_error(capsys, status, "diverged", "--lr")
    assert "1e+30" in last or "not finite" in last
    if (out / "last.ckpt").exists():  # only a good state is ever saved
        ckpt = torch.load(out / "last.ckpt", map_location="cpu", weights_only=True)
        assert all(
            torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point()
        )


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_hyper_parameter_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    status = main(
        [
            "pretrain",
            "--method",
            "matrix_ssl",
            "--hp",
            f"gamma={value}",
            "--out",
            str(tmp_path / "r"),
        ]
    )
    cli_error(capsys, status, "finite")
    assert not (tmp_path / "r").exists()


# --------------------------------------------------------------------------- bad CLI values
@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--lr", "-0.1"], "--lr must be > 0"),
        (["--lr", "nan"], "--lr must be a finite number"),
        (["--weight-decay", "-1"], "--weight-decay"),
        (["--warmup-epochs", "-2"], "--warmup-epochs"),
        (["--num-workers", "-1"], "--num-workers"),
        (["--limit-train-batches", "0"], "--limit-train-batches"),
        (["--limit-train-batches", "2.5"], "--limit-train-batches"),
        (["--checkpoint-every-minutes", "-1"], "--checkpoint-every-minutes"),
        (["--epochs", "0"], "--epochs"),
    ],
)
def test_bad_values_refused_before_any_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], fragment: str
) -> None:
    out = tmp_path / "run"
    cli_error(
        capsys, main(["pretrain", "--method", "matrix_ssl", *args, "--out", str(out)]), fragment
    )
    assert not out.exists()


def test_out_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "notes.txt"
    out.write_text("mine")
    cli_error(capsys, main(["pretrain", "--method", "matrix_ssl", "--out", str(out)]), "is a file")
    assert out.read_text() == "mine"


# -------------------------------------------------------------------------------- --resume
def test_resume_refuses_a_pickle_payload(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "loops": {}, "x": Payload()}, evil)
    status = main(["pretrain", "--resume", str(evil), "--out", str(tmp_path / "r")])
    cli_error(capsys, status, str(evil), "code")
    assert not marker.exists()


def test_resume_from_corrupted_truncated_or_foreign_files(
    tmp_path: Path, finished_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = (finished_run / "last.ckpt").read_bytes()
    cases = {
        "truncated.ckpt": (good[: len(good) // 2], "corrupted or truncated"),
        # Not what torch.save writes at all: said so, never "pickled objects to trust".
        "garbage.ckpt": (b"\x13" + os.urandom(4095), "is not a checkpoint"),
    }
    for name, (data, fragment) in cases.items():
        (tmp_path / name).write_bytes(data)
        status = main(["pretrain", "--resume", str(tmp_path / name), "--out", str(tmp_path / "r")])
        cli_error(capsys, status, fragment, name)
    torch.save(torch.zeros(3), tmp_path / "tensor.pth")
    status = main(
        ["pretrain", "--resume", str(tmp_path / "tensor.pth"), "--out", str(tmp_path / "r")]
    )
    cli_error(capsys, status, "a single tensor")
    exported = {
        "state_dict": {"conv1.weight": torch.zeros(1)},
        "meta": {"format": "lightly_matrix.mmdet_backbone"},
    }
    torch.save(exported, tmp_path / "backbone.pth")
    status = main(
        ["pretrain", "--resume", str(tmp_path / "backbone.pth"), "--out", str(tmp_path / "r")]
    )
    cli_error(capsys, status, "exported for mmdet")
    assert not (tmp_path / "r").exists()


def test_resume_folder_skips_a_corrupted_last_ckpt(
    tmp_path: Path, finished_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    good = (finished_run / "last.ckpt").read_bytes()
    (run / "checkpoints" / "epoch0000.ckpt").write_bytes(good)
    (run / "last.ckpt").write_bytes(good[:1000])  # e.g. a disk that filled up
    status = main(["pretrain", "--resume", str(run), "--epochs", "2", "--limit-train-batches", "2"])
    printed = capsys.readouterr().out
    assert status == 0
    assert "epoch0000.ckpt" in printed and "skipped" in printed and "epochs: 1 -> 2" in printed
    assert step_of(run / "last.ckpt") == 4


def test_resume_with_conflicting_flags(
    tmp_path: Path, finished_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--resume", str(finished_run), "--out", str(tmp_path / "r"), "--lr", "0.5"]
    args += ["--batch-size", "32", "--hp", "gamma=2.0", "--seed", "3", "--eval-split", "val"]
    last = cli_error(capsys, main(["pretrain", *args]), "differ from it")
    for fragment in ("--lr 0.5", "--batch-size 32", "--hp gamma=2.0", "--seed 3", "--eval-split"):
        assert fragment in last
    assert not (tmp_path / "r").exists()


def test_resume_with_other_labels(
    tmp_path: Path, finished_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    (tmp_path / "flat").mkdir()
    for i in range(20):
        Image.new("RGB", (20, 20), (i * 10, 0, 0)).save(tmp_path / "flat" / f"{i}.png")
    args = [
        "--resume",
        str(finished_run),
        "--out",
        str(tmp_path / "r"),
        "--data",
        str(tmp_path / "flat"),
    ]
    cli_error(capsys, main(["pretrain", *args]), "differ from it", "--data")


def test_resume_older_snapshot_into_a_folder_that_is_further_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    args = [*TINY, "--epochs", "2", "--limit-train-batches", "2", "--keep-every", "1"]
    assert main(["pretrain", *args, "--out", str(run)]) == 0
    capsys.readouterr()
    before = (run / "last.ckpt").read_bytes()
    status = main(["pretrain", "--resume", str(run / "checkpoints" / "epoch0000.ckpt")])
    cli_error(capsys, status, "would overwrite it")
    assert (run / "last.ckpt").read_bytes() == before


def test_no_lightning_tips_in_the_output(
    tmp_path: Path, finished_run: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    out = tmp_path / "r"
    assert (
        main(
            [
                "pretrain",
                "--resume",
                str(finished_run),
                "--epochs",
                "2",
                "--limit-train-batches",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    messages = " ".join(record.getMessage() for record in caplog.records)
    assert "GPU available" in messages  # Lightning's own records do arrive here
    assert "litlogger" not in messages and "Tip:" not in messages


def test_slurm_requeue_resumes_the_same_command(
    tmp_path: Path,
    finished_run: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    command = ["pretrain", *TINY, "--epochs", "2", "--limit-train-batches", "2", "--out", str(run)]
    cli_error(capsys, main(command), "not empty")  # a plain re-run is refused...
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    assert main(command) == 0  # ...a requeued job continues
    assert "SLURM requeue" in capsys.readouterr().out
    assert step_of(run / "last.ckpt") == 4


def test_export_counts_the_epochs_of_an_epoch_end_checkpoint(finished_run: Path) -> None:
    from lightly_matrix.export import load_backbone

    # last.ckpt is written in the epoch's end hooks, before Lightning marks the epoch completed.
    assert load_backbone(finished_run / "last.ckpt").meta["epochs"] == 1


def test_sigterm_between_steps_saves_and_says_so_like_ctrl_c(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A SIGTERM that lands outside a step (here right after the epoch-end save, where the probes
    run) used to meet Lightning's own check first: "the newest checkpoint is ..." instead of
    the save that Ctrl-C gets."""
    from lightly_matrix.pretrain.trainer import RunCheckpoint

    original = RunCheckpoint.on_train_epoch_end

    def then_sigterm(self, trainer, pl_module) -> None:
        original(self, trainer, pl_module)
        if trainer.current_epoch == 0:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(RunCheckpoint, "on_train_epoch_end", then_sigterm)
    out = tmp_path / "run"
    status = main(["pretrain", *TINY, "--epochs", "3", "--limit-train-batches", "2",
                   "--out", str(out)])  # fmt: skip
    stdout = capsys.readouterr().out
    assert status == 143
    assert f"interrupted (SIGTERM at epoch 2, step 3); saved {out / 'last.ckpt'}" in stdout
    assert step_of(out / "last.ckpt") == 3


# ------------------------------------------------------------------- one writer, full disks
@pytest.mark.slow
def test_two_runs_started_at_once_never_write_one_folder(tmp_path: Path) -> None:
    out = tmp_path / "conc"
    common = [*TINY, "--epochs", "2", "--limit-train-batches", "2", "--no-progress"]
    runs = [
        subprocess.Popen(
            cli(*common, "--seed", str(seed), "--out", str(out)),
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    results = [(*run.communicate(timeout=600), run.returncode) for run in runs]
    results = [(status, stdout, stderr) for stdout, stderr, status in results]
    assert sorted(status for status, _, _ in results) == [0, 2], results
    _, _, refused = next(result for result in results if result[0] == 2)
    last = refused.strip().splitlines()[-1]
    assert "Traceback" not in refused and str(out) in last
    assert "in use by another lightly-matrix process" in last or "another run" in last
    assert [p.name for p in (out / "csv").iterdir()] == ["version_0"]  # one run's logs
    assert step_of(out / "last.ckpt") == 4  # the winner's two epochs, nobody else's


def _limit_file_size(limit: int):
    import resource

    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.slow
def test_full_disk_during_a_save_is_one_line_and_keeps_the_previous_file(
    tmp_path: Path, finished_run: Path
) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = (run / "last.ckpt").read_bytes()
    done = subprocess.run(
        cli("--resume", str(run), "--epochs", "2", "--limit-train-batches", "2"),
        env=ENV, capture_output=True, text=True, preexec_fn=_limit_file_size(len(before) // 2),
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert "Traceback" not in done.stderr and str(run / "last.ckpt") in last and "disk" in last
    assert (run / "last.ckpt").read_bytes() == before
    assert not list(run.glob(".*.tmp"))


def test_atomic_checkpoint_io_on_a_full_disk(tmp_path: Path) -> None:
    import resource

    from lightly_matrix.cli import UserError
    from lightly_matrix.pretrain.checkpoints import AtomicCheckpointIO

    path, big = tmp_path / "last.ckpt", {"step": 2, "x": torch.zeros(100_000)}
    io = AtomicCheckpointIO()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    try:
        with pytest.raises(UserError) as first:  # the first save: nothing to resume
            io.save_checkpoint(big, path)
        io.save_checkpoint({"step": 1}, path)
        with pytest.raises(UserError) as info:
            io.save_checkpoint(big, path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert "start the run again" in str(first.value) and "--resume" not in str(first.value)
    assert str(path) in str(info.value) and "ulimit" in str(info.value)
    assert "continue with --resume" in str(info.value)
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_out_as_a_dangling_symlink_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "out").symlink_to(tmp_path / "nowhere")
    status = main(["pretrain", *TINY, "--out", str(tmp_path / "out")])
    cli_error(capsys, status, str(tmp_path / "out"), "symbolic link")
    assert not (tmp_path / "nowhere").exists()
