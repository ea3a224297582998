"""One reader of Lightning's loop counters, for checkpoint dicts and live trainers alike."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightly_matrix.utils.loop_progress import LoopProgress, checkpoint_progress, trainer_progress

BATCHES = 3  # per epoch


class _Tiny(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class _SaveAndRecord(pl.Callback):
    """Saves where our RunCheckpoint saves: after a batch mid-epoch, and at an epoch's end."""

    def __init__(self, folder) -> None:
        self.folder = folder
        self.saved: dict[str, LoopProgress] = {}

    def _save(self, trainer, name):
        trainer.save_checkpoint(self.folder / f"{name}.ckpt")
        self.saved[name] = trainer_progress(trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.current_epoch == 1 and batch_idx == 1:
            self._save(trainer, "mid")

    def on_train_epoch_end(self, trainer, pl_module):
        self._save(trainer, f"end{trainer.current_epoch}")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("loop")
    recorder = _SaveAndRecord(folder)
    trainer = pl.Trainer(
        max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[recorder],
    )  # fmt: skip
    data = TensorDataset(torch.randn(BATCHES * 2, 2))
    trainer.fit(_Tiny(), DataLoader(data, batch_size=2))
    trainer.save_checkpoint(folder / "final.ckpt")  # after fit: Lightning's epoch moved on
    recorder.saved["final"] = trainer_progress(trainer)
    return folder, recorder.saved


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("end0", LoopProgress(epoch=0, epochs_done=1, batches_done=3, global_step=3)),
        ("mid", LoopProgress(epoch=1, epochs_done=1, batches_done=2, global_step=5)),
        ("end1", LoopProgress(epoch=1, epochs_done=2, batches_done=3, global_step=6)),
        ("final", LoopProgress(epoch=2, epochs_done=2, batches_done=3, global_step=6)),
    ],
)
def test_checkpoint_and_live_trainer_read_the_same_position(run, name, expected):
    folder, live = run
    ckpt = torch.load(folder / f"{name}.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint_progress(ckpt) == expected
    assert live[name] == expected


def test_checkpoints_without_loop_state_fall_back_to_the_epoch():
    assert checkpoint_progress({}) == LoopProgress()
    assert checkpoint_progress({"epoch": 4, "global_step": 40}) == LoopProgress(
        epoch=4, epochs_done=5, global_step=40
    )
    # Odd values (hand-made or foreign dicts) are unknown, not errors.
    odd = {"epoch": "4", "global_step": True, "loops": {"fit_loop": {"epoch_progress": [1]}}}
    assert checkpoint_progress(odd) == LoopProgress()
    older = {"epoch": 0, "loops": {"fit_loop": {"epoch_progress": {"current": {"completed": 7}}}}}
    assert checkpoint_progress(older).epochs_done == 7  # no `processed` counter: `completed`


def test_the_three_readers_agree_on_a_real_checkpoint(run):
    """Export metadata, the resume message and the datamodule's state all use these counters."""
    from lightly_matrix.export.convert import lightning_provenance
    from lightly_matrix.pretrain.checkpoints import describe

    folder, _ = run
    ckpt = torch.load(folder / "mid.ckpt", map_location="cpu", weights_only=True)
    assert describe(ckpt) == "epoch 1, step 5"
    meta = lightning_provenance(ckpt)
    assert (meta["epochs"], meta["global_step"]) == (1, 5)
